"""Where ``asyncllm run`` gets its providers and its input when not told.

Providers, first match wins:

1. ``--config FILE`` (TOML, see ``docs/batch.md``);
2. ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` in the environment (hedged across both when
   both are set);
3. otherwise the embedded simulator, started in-process on a free loopback port with a
   heavy-tailed latency, behind an OpenAI-compatible and an Anthropic driver, so the whole
   pipeline (native drivers, hedging, rate limits, cache, budget, metrics) runs offline.

Input: ``--input FILE``, else the sample batch shipped with asyncllm
(``examples/batch/prompts.jsonl``).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path

from .._hooks import Limiter
from ..batch import BatchInputError, RunConfig

__all__ = ["check_readable", "environment_config", "sample_input"]

_SAMPLE = "prompts.jsonl"


def sample_input() -> Path:
    """The sample batch: the repository's ``examples/batch``, or the copy in the wheel."""
    here = Path(__file__).resolve().parent.parent
    for folder in (here.parent / "examples" / "batch", here / "_examples" / "batch"):
        if (folder / _SAMPLE).is_file():
            return folder / _SAMPLE
    raise BatchInputError("the sample batch is not installed; pass --input FILE")


async def environment_config(stack: AsyncExitStack) -> tuple[RunConfig, str]:
    """Real providers from API keys in the environment, else the embedded simulator."""
    from ..limits import limiter
    from ..providers import resolve

    have_openai = bool(os.environ.get("OPENAI_API_KEY"))
    have_anthropic = bool(os.environ.get("ANTHROPIC_API_KEY"))
    if have_openai or have_anthropic:
        specs = [
            s
            for s, ok in (
                ("openai:gpt-4o-mini", have_openai),
                ("anthropic:claude-3-5-haiku-latest", have_anthropic),
            )
            if ok
        ]
        return (
            RunConfig(
                providers=[resolve(s) for s in specs],
                strategy="hedge",
                timeout=60.0,
                concurrency=16,
                cache={"ttl": 3600},
                budget={"usd": 1.0},
            ),
            "real providers: " + ", ".join(specs),
        )
    from ..testing import Simulator, heavy_tail

    # Limits scaled to a 1 s period so a short run shows them working.
    sim = await stack.enter_async_context(
        Simulator(
            latency=heavy_tail(0.02),
            token_delay=0.001,
            output_tokens=24,
            rpm=3000,
            tpm=600_000,
            period=1.0,
        )
    )
    providers = [
        resolve(
            "openai_compatible:sim-gpt",
            name="sim-openai",
            base_url=sim.openai_base_url,
            api_key="sim",
        ),
        resolve(
            "anthropic:sim-claude",
            name="sim-anthropic",
            base_url=sim.anthropic_base_url,
            api_key="sim",
        ),
    ]
    # Both drivers hit one simulator, so they share one limit: give each half.
    limits: dict[str, Limiter] = {
        p.name: limiter(rpm=1500, tpm=300_000, period=1.0, max_concurrency=64, name=p.name)
        for p in providers
    }
    return (
        RunConfig(
            providers=providers,
            limits=limits,
            strategy="hedge",
            timeout=30.0,
            concurrency=64,
            cache={"ttl": 600},
            budget={"usd": 1.0},
            # The simulated models are billed at gpt-4o-mini's list price.
            prices={
                (p.name, str(p.default_model)): {"input_per_mtok": 0.15, "output_per_mtok": 0.6}
                for p in providers
            },
        ),
        f"embedded simulator at {sim.base_url} (no API key set)",
    )


def check_readable(path: Path) -> None:
    """The input can be opened (as the run will read it), or a :class:`BatchInputError`."""
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise BatchInputError(f"cannot read the input: {exc.strerror}", path=str(path)) from exc
