"""A spend budget under concurrency, through the whole client: refusals are
``BudgetExceeded`` (never retried, never fallen over to another provider), spending never
passes the limit, and cache hits touch neither the budget nor the limiter.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from _e2e_helpers import assert_limiters_idle, other_tasks, reserved_usd

from asyncllm import (
    AllProvidersFailed,
    BudgetExceeded,
    ChatRequest,
    Client,
    Hedge,
    MemoryBudget,
    ModelPrice,
    Prices,
    RateLimiter,
    ServerError,
    SpendLimit,
)
from asyncllm._build import build_request
from asyncllm.cache import ResponseCache
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

PRICE = ModelPrice(input_per_mtok=1_000.0, output_per_mtok=1_000.0)  # $0.001 a token
MAX_TOKENS = 10


def worst_case(prompt: str) -> float:
    """What one attempt reserves: its input estimate plus ``max_tokens``, at PRICE."""
    tokens = build_request(prompt, {}).estimated_input_tokens() + MAX_TOKENS
    return tokens * 0.001


class SpendWatch:
    """Samples the budget after every provider call: spent + reserved never past the limit."""

    def __init__(self, budget: MemoryBudget, limit: float) -> None:
        self.budget = budget
        self.limit = limit
        self.worst = 0.0

    def sample(self) -> None:
        day = self.budget.statistics()["buckets"]["day"]
        self.worst = max(self.worst, day["spent_usd"] + day["reserved_usd"])


def provider(name: str, watch: list[SpendWatch], latency: float = 1.0) -> FakeProvider:
    def handler(request: ChatRequest, i: int) -> FakeReply:
        watch[0].sample()
        return FakeReply(tokens=("a", "b", "c", "d"), latency=latency)

    return FakeProvider(name, handler=handler)


async def test_concurrent_refusals_are_typed_final_and_spending_stays_under_the_limit(
    looptime: Any,
) -> None:
    prompts = [f"prompt {i:02d}" for i in range(30)]
    per = worst_case(prompts[0])
    limit = 10 * per + per / 2  # room for exactly ten worst cases at once
    table = Prices({("a", "fake-model"): PRICE, ("b", "fake-model"): PRICE})
    budget = MemoryBudget(SpendLimit(limit), pricing=table)
    watch = [SpendWatch(budget, limit)]
    a, b = provider("a", watch), provider("b", watch)
    limits = {n: RateLimiter(max_concurrency=64, name=n) for n in ("a", "b")}
    cache = ResponseCache()
    before = other_tasks()
    async with Client(
        [a, b], limits=limits, budget=budget, pricing=table, cache=cache, log=False
    ) as client:
        with anyio.fail_after(30):
            async with client.map(
                prompts, concurrency=30, ordered=True, temperature=0, max_tokens=MAX_TOKENS
            ) as results:
                first = [r async for r in results]
        counters = dict(client.statistics()["counters"])
        spent_after_first = budget.statistics()["buckets"]["day"]["spent_usd"]
        assert float(looptime) == pytest.approx(1.0)  # refusals did not wait for anything

        ok = [r for r in first if r.ok]
        refused = [r for r in first if not r.ok]
        assert len(ok) == 10 and len(refused) == 20
        # Typed, and final: not wrapped as "all providers failed", not retried, not fallen
        # over to b (which never got a call).
        for r in refused:
            assert type(r.error) is BudgetExceeded, r.error
            assert not isinstance(r.error, AllProvidersFailed)
            assert r.error.requested_usd == pytest.approx(per, rel=1e-6)
        assert len(a.calls) == 10 and b.calls == []
        assert counters["retry"] == 0 and counters["fallback"] == 0
        assert counters["attempts"] == 30
        day = budget.statistics()["buckets"]["day"]
        assert day["refusals"] == 20 and day["reserved_usd"] == 0
        assert watch[0].worst <= limit + 1e-12
        actual = sum(r.response.cost_usd or 0.0 for r in ok if r.response is not None)
        assert day["spent_usd"] == pytest.approx(actual) and 0 < actual <= limit

        # The ten answered prompts again: cache hits, free, and nothing else is touched.
        acquired = sum(lim.statistics()["acquired"] for lim in limits.values())
        again = [await client.complete(r.request, temperature=0, max_tokens=MAX_TOKENS) for r in ok]
        assert all(x.cached and x.cost_usd == 0.0 for x in again)
        assert [x.text for x in again] == [r.response.text for r in ok if r.response]
        day2 = budget.statistics()["buckets"]["day"]
        assert (day2["reservations"], day2["refusals"]) == (day["reservations"], 20)
        assert day2["spent_usd"] == spent_after_first
        assert sum(lim.statistics()["acquired"] for lim in limits.values()) == acquired
        assert len(a.calls) == 10 and client.statistics()["counters"] == counters
        assert client.statistics()["cache"]["hits"] == 10
        assert_limiters_idle(client)
    assert other_tasks() - before == set()


async def test_budget_holds_under_hedging_and_retries(looptime: Any) -> None:
    """Every attempt (primary, hedge, retry) reserves: with hedges firing and errors
    retried, the budget never overcommits and nothing stays reserved."""
    prompts = [f"hedged prompt {i:02d}" for i in range(40)]
    per = worst_case(prompts[0])
    limit = 25 * per
    table = Prices({("a", "fake-model"): PRICE, ("b", "fake-model"): PRICE})
    budget = MemoryBudget(SpendLimit(limit), pricing=table)
    watch = [SpendWatch(budget, limit)]

    def slow_then_fast(request: ChatRequest, i: int) -> FakeReply:
        watch[0].sample()
        if i % 5 == 1:
            return FakeReply(tokens=(), error=ServerError("boom"), latency=0.1)
        return FakeReply(tokens=("x", "y"), latency=3.0 if i % 3 == 0 else 0.2)

    a = FakeProvider("a", handler=slow_then_fast)
    b = FakeProvider("b", handler=slow_then_fast)
    async with Client(
        [a, b],
        strategy=Hedge(delay=0.5, allowance=1.0, burst=40),
        budget=budget,
        pricing=table,
        log=False,
    ) as client:
        with anyio.fail_after(60):
            async with client.map(prompts, concurrency=40, max_tokens=MAX_TOKENS) as results:
                out = [r async for r in results]
        counters = client.statistics()["counters"]
    day = budget.statistics()["buckets"]["day"]
    assert reserved_usd(budget.statistics()) == 0
    assert watch[0].worst <= limit + 1e-12
    assert day["spent_usd"] <= limit + 1e-12
    assert counters["hedge"] >= 1 and counters["fallback"] + counters["retry"] >= 1
    errors = [r.error for r in out if not r.ok]
    # A failed request failed on the budget (directly, or as the last of its attempts).
    for e in errors:
        last = e.exceptions[-1] if isinstance(e, AllProvidersFailed) else e
        assert isinstance(e, BudgetExceeded) or isinstance(last, ServerError), e
    assert sum(1 for r in out if r.ok) >= 1
    assert math.isclose(day["refusals"], counters["attempts"] - day["reservations"])


async def test_a_hedge_the_budget_cannot_fit_does_not_kill_the_primary(looptime: Any) -> None:
    """The primary fits the budget, a backup would not: the request should go on with the
    primary (the hedge is an optional extra), not fail with BudgetExceeded."""
    per = worst_case("one prompt")
    table = Prices({("a", "fake-model"): PRICE, ("b", "fake-model"): PRICE})
    budget = MemoryBudget(SpendLimit(1.5 * per), pricing=table)
    a = FakeProvider("a", replies=[FakeReply(tokens=("slow",), latency=2.0)])
    b = FakeProvider("b", replies=[FakeReply(tokens=("fast",), latency=0.1)])
    async with Client(
        [a, b], strategy=Hedge(delay=0.5), budget=budget, pricing=table, log=False
    ) as client:
        response = await client.complete("one prompt", max_tokens=MAX_TOKENS)
    assert response.text == "slow"
