"""The fault matrix: every fault x complete/stream x single/fallback/hedge.

Each cell runs on real HTTP against the simulator and must end in a response or a typed
:class:`~asyncllm.AsyncLLMError` within a bound (no hang), with no task left behind, no
connection left open on the server, every limiter slot free and no budget reservation left.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from asyncllm import (
    AnthropicProvider,
    AsyncLLMError,
    Client,
    Hedge,
    MemoryBudget,
    ModelPrice,
    OpenAICompatibleProvider,
    Prices,
    RateLimiter,
    RetryPolicy,
    SpendLimit,
    StreamBroken,
)
from asyncllm.testing import Fault, Simulator

PRICES = Prices({("oa", "sim-oa"): ModelPrice(1.0, 2.0), ("an", "sim-an"): ModelPrice(1.0, 2.0)})


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current}


FAULTS: dict[str, Fault] = {
    "500": Fault.server_error(500),
    "503": Fault.unavailable(),
    "529": Fault.overloaded(),
    "429": Fault.rate_limit(retry_after=0.05),
    "reset": Fault.drop_mid_stream(after=0),
    "stall": Fault.stall(5.0),
    "drop_mid_stream": Fault.drop_mid_stream(after=2),
    "malformed": Fault.malformed_chunk(after=1),
    "stall_mid_stream": Fault.stall(5.0, after=2),
    "error_mid_stream": Fault.server_error(500, after=2),
}
STRATEGIES = ("single", "fallback", "hedge")
MID_STREAM = {"drop_mid_stream", "malformed", "stall_mid_stream", "error_mid_stream"}


async def run_cell(
    sim: Simulator, fault: Fault, stream: bool, strategy: str, times: int = 1
) -> object:
    providers: list[Any] = [
        OpenAICompatibleProvider(
            name="oa", base_url=sim.openai_base_url, model="sim-oa", api_key="k",
            stream_usage=True,
        )
    ]  # fmt: skip
    if strategy != "single":
        providers.append(
            AnthropicProvider(
                name="an", base_url=sim.anthropic_base_url, model="sim-an", api_key="k"
            )
        )
    limits = {p.name: RateLimiter(max_concurrency=4, name=p.name) for p in providers}
    budget = MemoryBudget(SpendLimit(100.0))
    client = Client(
        providers,
        strategy=Hedge(delay=0.05) if strategy == "hedge" else "fallback",
        retry=RetryPolicy(max_retries=1, base_delay=0.01),
        timeout=3.0,
        attempt_timeout=0.5,
        limits=limits,
        budget=budget,
        pricing=PRICES,
        log=False,
    )
    sim.inject(fault, times=times)
    outcome: object
    async with client:
        try:
            if stream:
                async with client.stream("hello there", max_tokens=8) as s:
                    text = "".join([c.text async for c in s])
                assert text
                outcome = s.response
            else:
                outcome = await client.complete("hello there", max_tokens=8)
        except AsyncLLMError as exc:
            outcome = exc
        for lim in limits.values():
            st = lim.statistics()
            assert st["in_flight"] == 0 and st["waiting"] == 0, st
        reserved = sum(b["reserved_usd"] for b in budget.statistics()["buckets"].values())
        assert reserved == 0
    return outcome


async def checked_cell(fault: str, stream: bool, strategy: str, times: int = 1) -> object:
    """Run one cell; check no hang, no open connection, no leaked task."""
    async with Simulator(output_tokens=6, token_delay=0.002) as sim:
        before = other_tasks()
        with anyio.fail_after(6):  # no hang: the call's own deadline is 3 s
            outcome = await run_cell(sim, FAULTS[fault], stream, strategy, times)
        assert isinstance(outcome, AsyncLLMError) or getattr(outcome, "text", "")
        for _ in range(100):  # no connection left open, nothing still being served
            if sim.stats.connections == 0 and sim.stats.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert (sim.stats.connections, sim.stats.in_flight) == (0, 0), sim.stats.as_dict()
        await asyncio.sleep(0)
        leaked = {t for t in other_tasks() - before if not t.done()}
        assert not leaked, leaked
    return outcome


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_cell(fault: str, stream: bool, strategy: str) -> None:
    outcome = await checked_cell(fault, stream, strategy)
    if stream and fault in MID_STREAM:
        # Chunks already reached the caller: no fail-over, a typed broken stream that
        # carries the partial text.
        assert isinstance(outcome, StreamBroken) and outcome.partial_text, outcome
    else:
        # One failure, then a retry or a healthy second provider: recovered.
        assert not isinstance(outcome, AsyncLLMError), outcome


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in ("stall", "stall_mid_stream")])
async def test_a_fault_that_persists_on_the_only_provider_is_a_typed_error(
    fault: str, stream: bool
) -> None:
    outcome = await checked_cell(fault, stream, "single", times=10)
    assert isinstance(outcome, AsyncLLMError), outcome
