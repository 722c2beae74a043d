"""1,000 concurrent requests through the client never overspend a budget (memory, Redis)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _redis_ctl import RedisProc, controlled_redis

from asyncllm import AllProvidersFailed, BudgetExceeded, Client, Response, Usage
from asyncllm.cost import (
    BudgetUnavailable,
    MemoryBudget,
    ModelPrice,
    Prices,
    RedisBudget,
    SpendLimit,
)
from asyncllm.testing import FakeProvider, FakeReply

PRICES = Prices({("openai", "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000)})
LIMIT = 3.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProc]:
    with controlled_redis(tmp_path) as r:
        yield r


def refused(exc: BaseException) -> bool:
    """Refused by the limit (a healthy Redis is never reported as unavailable)."""
    if isinstance(exc, BudgetExceeded):
        return not isinstance(exc, BudgetUnavailable)
    return isinstance(exc, AllProvidersFailed) and all(refused(e) for e in exc.exceptions)


async def hammer(budget: Any, *, missing_usage_every: int = 7) -> tuple[list[Response], int]:
    rng = random.Random(11)

    def handler(request: Any, i: int) -> FakeReply:
        n_out = rng.randrange(1, 11)
        usage = Usage(input_tokens=request.estimated_input_tokens(), output_tokens=n_out)
        return FakeReply(
            tokens=("x",) * n_out,
            # Some answers come without usage: booked at their worst case, never free.
            usage=None if i % missing_usage_every == 0 else usage,
            latency=rng.random() * 0.02,
        )

    provider = FakeProvider("openai", kind="openai", model="m", handler=handler)
    responses: list[Response] = []
    refusals = 0
    async with Client(provider, budget=budget, pricing=PRICES, log=False) as client:

        async def one(i: int) -> None:
            nonlocal refusals
            try:
                responses.append(await client.complete(f"question {i}", max_tokens=10))
            except Exception as exc:
                assert refused(exc), exc
                refusals += 1

        async with anyio.create_task_group() as tg:
            for i in range(1000):
                tg.start_soon(one, i)
    return responses, refusals


async def test_memory_budget_is_never_overspent() -> None:
    budget = MemoryBudget(SpendLimit(LIMIT))
    responses, refusals = await hammer(budget)
    stats = budget.statistics()["buckets"]["day"]
    spent = sum(r.cost_usd or 0.0 for r in responses)
    assert refusals > 0 and stats["reserved_usd"] == 0
    assert stats["spent_usd"] <= LIMIT and stats["spent_usd"] == pytest.approx(spent, abs=1e-6)


@pytest.mark.redis
async def test_redis_budget_is_never_overspent(redis: RedisProc) -> None:
    budget = RedisBudget(redis.url, SpendLimit(LIMIT), name="concurrency")
    responses, refusals = await hammer(budget)
    assert await budget.flush() == 0  # bookings deferred under load, if any, are made
    stats = (await budget.fetch_statistics())["buckets"]["day"]
    await budget.aclose()
    spent = sum(r.cost_usd or 0.0 for r in responses)
    assert refusals > 0 and stats["reserved_usd"] == 0
    assert stats["spent_usd"] <= LIMIT and stats["spent_usd"] == pytest.approx(spent, abs=1e-6)
