"""``asyncllm run``: the main job. Streams one answer, then fans a batch of prompts out.

Where the providers come from, first match wins:

1. ``--config FILE`` (TOML, see :mod:`asyncllm.cli._config`);
2. ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` in the environment (hedged across both when
   both are set);
3. otherwise the embedded simulator, started in-process on a free loopback port with a
   heavy-tailed latency, behind an OpenAI-compatible and an Anthropic driver, so the whole
   pipeline (native drivers, hedging, rate limits, cache, budget, metrics) runs offline.

Prompts come from ``--input`` (JSON lines: ``{"prompt": "..."}`` or ``{"messages": [...]}``
plus request parameters), or are generated (``--count``, with repeats the cache answers).
Results go to ``--output`` as JSON lines, in input order.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import IO, Any

import anyio
import orjson

from .._client import Client
from .._exceptions import AsyncLLMError
from .._hooks import Limiter
from ._config import RunConfig, build_client, load_config

__all__ = ["add_parser"]

_TOPICS = (
    "rate limits",
    "hedged requests",
    "circuit breakers",
    "token streams",
    "structured concurrency",
    "response caches",
    "budgets",
    "retries",
)


def add_parser(sub: Any) -> None:
    """Register ``asyncllm run``."""
    p = sub.add_parser("run", help="stream one answer, then fan a batch of prompts out")
    p.add_argument("--config", help="TOML config (providers, limits, cache, budget)")
    p.add_argument("--input", help="JSON lines of prompts ('-' for stdin)")
    p.add_argument("--output", help="write results here as JSON lines, in input order")
    p.add_argument("--count", type=int, default=400, help="generated prompts (default 400)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default from config)")
    p.add_argument("--quiet", action="store_true", help="do not stream the first answer")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="structured events shown on stderr (default: warning)",
    )
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("asyncllm run: --count must be at least 1", file=sys.stderr)
        return 2
    _configure_logging(args.log_level)
    try:
        return anyio.run(_run, args)
    except AsyncLLMError as exc:
        print(f"asyncllm run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _configure_logging(level: str) -> None:
    # The library never configures structlog; this command is an application, so it does,
    # once, for its own process: events at `level` and above, rendered to stderr.
    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _generated(count: int) -> Iterator[dict[str, Any]]:
    # One prompt in four repeats an earlier one: the cache answers those.
    for i in range(count):
        n = i if i % 4 else i // 4
        topic = _TOPICS[n % len(_TOPICS)]
        yield {
            "prompt": f"In one sentence, why do LLM clients need {topic}? (#{n})",
            "temperature": 0,
            "max_tokens": 64,
        }


async def _read_input(path: str) -> AsyncIterator[dict[str, Any]]:
    # Lines are read in a worker thread, so a slow producer on stdin never blocks the loop.
    if path == "-":
        stream = anyio.wrap_file(sys.stdin.buffer)
    else:
        try:
            stream = await anyio.open_file(path, "rb")
        except OSError as exc:
            raise AsyncLLMError(f"cannot read {path}: {exc.strerror}") from exc
    async with stream:
        lineno = 0
        async for line in stream:
            lineno += 1
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise AsyncLLMError(f"{path}:{lineno}: not JSON: {exc}") from exc
            if not isinstance(item, dict) or not ("prompt" in item or "messages" in item):
                raise AsyncLLMError(f"{path}:{lineno}: needs 'prompt' or 'messages'")
            yield item


def _split(item: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    params = dict(item)
    messages = params.pop("messages", None) or params.pop("prompt")
    params.pop("prompt", None)
    params.pop("id", None)
    return messages, params


async def _environment_config(stack: AsyncExitStack) -> tuple[RunConfig, str]:
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
        providers = [resolve(s) for s in specs]
        return (
            RunConfig(
                providers=providers,
                strategy="hedge",
                timeout=60.0,
                concurrency=16,
                cache={"ttl": 3600},
                budget={"usd": 1.0, "period": "day"},
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
            stream_usage=True,  # the simulator reports usage at the end of streams
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


async def _items(args: argparse.Namespace) -> AsyncGenerator[dict[str, Any], None]:
    if args.input:
        async for item in _read_input(args.input):
            yield item
    else:
        for item in _generated(args.count):
            yield item


async def _run(args: argparse.Namespace) -> int:
    from ..telemetry import MetricsObserver

    async with AsyncExitStack() as stack:
        if args.config:
            config, where = load_config(args.config), f"config {args.config}"
        else:
            config, where = await _environment_config(stack)
        # Limiters shared through Redis hold a connection pool: close them on the way out.
        for lim in config.limits.values():
            close = getattr(lim, "aclose", None)
            if close is not None:
                stack.push_async_callback(close)
        metrics = MetricsObserver()
        client: Client = await stack.enter_async_context(build_client(config, observers=[metrics]))
        print(f"asyncllm: {where}; strategy={config.strategy}", file=sys.stderr)

        items = _items(args)
        stack.push_async_callback(items.aclose)
        first = await anext(items, None)
        if first is None:
            print("asyncllm run: no prompts", file=sys.stderr)
            return 2
        messages, params = _split(first)
        if not args.quiet:
            async with client.stream(messages, **params) as s:
                async for chunk in s:
                    print(chunk.text, end="", flush=True)
            print()

        out = _Writer(args.output) if args.output else None
        concurrency = args.concurrency or config.concurrency
        ok = failed = 0
        started = time.perf_counter()

        async def requests() -> AsyncIterator[Any]:
            yield _as_request(first)
            async for item in items:
                yield _as_request(item)

        async with client.map(requests(), concurrency=concurrency, ordered=True) as results:
            async for result in results:
                if result.error is None:
                    ok += 1
                else:
                    failed += 1
                if out is not None:
                    await out.write(_record(result))
        if out is not None:
            await out.close()
        elapsed = time.perf_counter() - started
        _summary(ok, failed, elapsed, metrics.statistics(), client.statistics())
        return 0 if failed == 0 else 1


class _Writer:
    """JSON lines to a file, written off the event loop in batches."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._buffer: list[bytes] = []
        self._file: IO[bytes] | None = None

    async def write(self, record: dict[str, Any]) -> None:
        self._buffer.append(orjson.dumps(record) + b"\n")
        if len(self._buffer) >= 512:
            await self._flush()

    async def _flush(self) -> None:
        data, self._buffer = b"".join(self._buffer), []
        await anyio.to_thread.run_sync(self._write_sync, data)

    def _write_sync(self, data: bytes) -> None:
        if self._file is None:
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(data)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._flush()
            if self._file is not None:
                await anyio.to_thread.run_sync(self._file.close)


def _as_request(item: dict[str, Any]) -> Any:
    from .._build import build_request

    messages, params = _split(item)
    return build_request(messages, params)


def _record(result: Any) -> dict[str, Any]:
    r = result.response
    if r is None:
        return {
            "index": result.index,
            "error": type(result.error).__name__,
            "message": str(result.error),
        }
    return {
        "index": result.index,
        "text": r.text,
        "provider": r.provider,
        "model": r.model,
        "finish_reason": r.finish_reason,
        "input_tokens": None if r.usage is None else r.usage.input_tokens,
        "output_tokens": None if r.usage is None else r.usage.output_tokens,
        "cost_usd": r.cost_usd,
        "cached": r.cached,
        "latency_s": round(r.latency, 4),
    }


def _summary(
    ok: int, failed: int, elapsed: float, metrics: dict[str, Any], stats: dict[str, Any]
) -> None:
    req = metrics.get("requests", {})
    lat = req.get("latency_s", {})
    totals = metrics.get("totals", {})
    cache = stats.get("cache", {})
    counters = stats.get("counters", {})
    lines = [
        f"requests: {ok} ok, {failed} failed in {elapsed:.2f}s "
        f"({(ok + failed) / max(elapsed, 1e-9):.0f}/s)",
        "latency: "
        + ", ".join(
            f"{k} {v * 1000:.0f} ms"
            for k, v in lat.items()
            if k in ("p50", "p95", "p99") and v is not None
        ),
        f"cache: {cache.get('hits', 0)} hits, {cache.get('deduplicated', 0)} de-duplicated",
        "attempts: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())),
        f"tokens: {totals.get('input_tokens', 0)} in, {totals.get('output_tokens', 0)} out; "
        f"cost ${totals.get('cost_usd', 0.0):.6f}",
    ]
    print("\n".join(lines), file=sys.stderr)
