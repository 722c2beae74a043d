"""Budgets and pricing through the real Client, with FakeProviders on a fake clock."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from asyncllm import AllProvidersFailed, BudgetExceeded, Client, Response, Usage
from asyncllm._build import build_request
from asyncllm.cost import MemoryBudget, ModelPrice, Prices, SpendLimit
from asyncllm.orchestrator import Hedge
from asyncllm.testing import FakeProvider, FakeReply, heavy_tail

pytestmark = pytest.mark.looptime

# $1 per 1,000 tokens in or out on "openai", $2 on "anthropic".
PRICES = Prices(
    {
        ("openai", "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000),
        ("anthropic", "m"): ModelPrice(input_per_mtok=2000, output_per_mtok=2000),
    }
)


def refused(exc: BaseException) -> bool:
    """The request failed because the budget refused it."""
    if isinstance(exc, BudgetExceeded):
        return True
    return isinstance(exc, AllProvidersFailed) and all(
        isinstance(e, BudgetExceeded) for e in exc.exceptions
    )


async def test_thousand_concurrent_client_requests_stay_within_budget() -> None:
    limit = 5.0
    budget = MemoryBudget(SpendLimit(limit), pricing=PRICES)
    rng = random.Random(3)

    def handler(request: Any, i: int) -> FakeReply:
        # Real usage within the worst case: estimated input, at most max_tokens out.
        n_out = rng.randrange(1, 11)
        return FakeReply(
            tokens=("x",) * n_out,
            usage=Usage(input_tokens=request.estimated_input_tokens(), output_tokens=n_out),
        )

    provider = FakeProvider(
        "p", kind="openai", model="m", handler=handler, latency=heavy_tail(0.2), seed=1
    )
    responses: list[Response] = []
    failures: list[BaseException] = []

    async with Client(provider, budget=budget, pricing=PRICES, log=False) as client:

        async def one(i: int) -> None:
            await anyio.sleep(rng.random() * 2.0)  # arrivals spread over two (fake) seconds
            try:
                responses.append(await client.complete(f"question {i}", max_tokens=10))
            except Exception as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for i in range(1000):
                tg.start_soon(one, i)

    spent = sum(r.cost_usd or 0.0 for r in responses)
    stats = budget.statistics()["buckets"]["day"]
    assert failures and all(refused(e) for e in failures)
    assert spent <= limit
    assert stats["spent_usd"] == pytest.approx(spent, abs=1e-6) and stats["reserved_usd"] == 0
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in responses)
    # Refusals begin only once worst cases no longer fit: at least limit // worst got in.
    worst = PRICES.worst_case(
        build_request("question 999", {"max_tokens": 10}), kind="openai", model="m", local=False
    )
    assert worst is not None and len(responses) >= int(limit // worst)
    print(f"{len(responses)} answered, {len(failures)} refused, ${spent:.4f} of ${limit}")


async def test_hedge_reserves_each_leg_at_its_providers_price_and_loser_keeps_worst_case() -> None:
    budget = MemoryBudget(
        SpendLimit(100.0), SpendLimit(100.0, provider="anthropic"), pricing=PRICES
    )
    slow = FakeProvider("slow", kind="openai", model="m", latency=5.0)
    fast = FakeProvider("fast", kind="anthropic", model="m", latency=0.1)
    async with Client(
        [slow, fast], strategy=Hedge(delay=0.5), budget=budget, pricing=PRICES, log=False
    ) as client:
        response = await client.complete("hi", max_tokens=50)
    assert response.provider == "fast"
    request = build_request("hi", {"max_tokens": 50})
    slow_worst = PRICES.worst_case(request, kind="openai", model="m", local=False)
    assert slow_worst is not None and response.cost_usd is not None
    buckets = budget.statistics()["buckets"]
    # The cancelled primary was sent: its usage is unknown, so its worst case stays spent.
    assert buckets["day"]["spent_usd"] == pytest.approx(slow_worst + response.cost_usd)
    assert buckets["day/provider=anthropic"]["spent_usd"] == pytest.approx(response.cost_usd)
    assert buckets["day"]["reserved_usd"] == 0
    assert fast.calls and slow.cancelled == 1


async def test_response_cost_is_set_from_prices() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500)
    provider = FakeProvider(
        "openai", kind="openai", model="gpt-4o-mini", replies=[FakeReply(usage=usage)]
    )
    async with Client(provider, pricing=Prices(), log=False) as client:
        response = await client.complete("hi")
    assert response.cost_usd == pytest.approx(0.00045)  # $0.15 / $0.60 per million
