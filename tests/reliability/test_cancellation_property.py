"""Cancellation at random points (hypothesis): every limiter slot and budget reservation
comes back, whatever the strategy, the path and the moment the caller gives up."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncllm import (
    Client,
    Hedge,
    MemoryBudget,
    ModelPrice,
    Prices,
    RateLimiter,
    SpendLimit,
)
from asyncllm.testing import FakeProvider, FakeReply

PRICES = Prices({(n, "m"): ModelPrice(1000.0, 1000.0) for n in ("a", "b")})

call_plan = st.tuples(
    st.floats(min_value=0.0, max_value=0.06),  # when the caller gives up
    st.booleans(),  # stream or complete
    st.floats(min_value=0.0, max_value=0.04),  # the provider's latency
)


def provider(name: str, latencies: list[float]) -> FakeProvider:
    def handler(request: Any, i: int) -> FakeReply:
        return FakeReply(tokens=("a", "b", "c", "d"), latency=latencies[i % len(latencies)])

    return FakeProvider(name, model="m", kind="openai", handler=handler, token_delay=0.005)


async def scenario(strategy: str, plans: list[tuple[float, bool, float]]) -> None:
    limits = {n: RateLimiter(max_concurrency=2, tpm=10**6, period=1.0, name=n) for n in ("a", "b")}
    budget = MemoryBudget(SpendLimit(1000.0))
    latencies = [p[2] for p in plans]
    client = Client(
        [provider("a", latencies), provider("b", latencies[::-1])],
        strategy=Hedge(delay=0.01) if strategy == "hedge" else strategy,
        limits=limits,
        budget=budget,
        pricing=PRICES,
        log=False,
    )
    current = asyncio.current_task()
    before = {t for t in asyncio.all_tasks() if t is not current}
    async with client:

        async def one(cancel_at: float, stream: bool) -> None:
            with anyio.move_on_after(cancel_at):
                if stream:
                    async with client.stream("hi there", max_tokens=4) as s:
                        async for _ in s:
                            pass
                else:
                    await client.complete("hi there", max_tokens=4)

        async with anyio.create_task_group() as tg:
            for cancel_at, stream, _ in plans:
                tg.start_soon(one, cancel_at, stream)
        for name, lim in limits.items():
            s = lim.statistics()
            assert s["in_flight"] == 0 and s["waiting"] == 0, (name, s)
        stats = budget.statistics()["buckets"]["day"]
        assert stats["reserved_usd"] == 0, stats
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() if t is not current} - before
    assert not {t for t in leaked if not t.done()}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    strategy=st.sampled_from(["fallback", "race", "hedge"]),
    plans=st.lists(call_plan, min_size=1, max_size=12),
)
def test_random_cancellations_return_every_slot_and_reservation(
    strategy: str, plans: list[tuple[float, bool, float]]
) -> None:
    asyncio.run(scenario(strategy, plans))
