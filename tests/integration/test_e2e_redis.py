"""The Redis-shared pieces together: a ``RedisRateLimiter`` per provider, the Redis response
cache and a ``RedisBudget``, against the simulator; then a second client (another process,
as far as Redis can tell) that shares all three; and everything closes its connections.

Also: an unreachable Redis makes the shared limiter fail closed with a typed error.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from _e2e_helpers import anthropic, openai_compatible, other_tasks, prices
from _redis import free_port

from asyncllm import (
    AllProvidersFailed,
    Client,
    Hedge,
    RedisBudget,
    RedisRateLimiter,
    RetryPolicy,
    SpendLimit,
)
from asyncllm.cache import ResponseCache
from asyncllm.limits import LimiterUnavailable
from asyncllm.testing import Fault, Simulator

LIMIT_USD = 5.0


class Shared:
    """One "process": its own limiters, cache and budget objects on the shared Redis."""

    def __init__(self, redis_url: str, tag: str) -> None:
        self.limits = {
            n: RedisRateLimiter(
                rpm=60_000, tpm=10_000_000, max_concurrency=6, url=redis_url, key=f"{tag}-{n}",
                name=n,
            )
            for n in ("oa", "an")
        }  # fmt: skip
        self.cache = ResponseCache.redis(redis_url, namespace=tag)
        self.budget = RedisBudget(
            redis_url, SpendLimit(LIMIT_USD), pricing=prices(), prefix=f"e2e:{tag}"
        )

    def client(self, sim: Simulator) -> Client:
        return Client(
            [openai_compatible(sim), anthropic(sim)],
            strategy=Hedge(delay=0.05, allowance=0.5),
            retry=RetryPolicy(base_delay=0.01, max_delay=0.05),
            limits=self.limits,
            budget=self.budget,
            pricing=prices(),
            cache=self.cache,
            log=False,
            timeout=10,
        )

    async def aclose(self) -> None:
        for lim in self.limits.values():
            await lim.aclose()
        await self.budget.aclose()


async def connected_clients(redis_url: str) -> int:
    """Connections Redis has open, besides the one asking."""
    admin = aioredis.Redis.from_url(redis_url)
    try:
        return len(await admin.client_list()) - 1
    finally:
        await admin.aclose()


async def run_two_processes(sim: Simulator, a: Shared, b: Shared, prompts: list[str]) -> None:
    sim.inject(Fault.rate_limit(retry_after=0.05))
    sim.inject(Fault.server_error(500))
    client = a.client(sim)
    with anyio.fail_after(20):
        async with client, client.map(prompts, concurrency=12, temperature=0) as results:
            first = [r async for r in results]
    assert all(r.ok for r in first), [r.error for r in first if not r.ok]
    answers = {r.request: r.response.text for r in first if r.response is not None}
    cache = client.statistics()["cache"]
    assert cache["hits"] + cache["deduplicated"] + cache["misses"] == len(prompts)
    assert cache["misses"] == len(answers) == 30 and cache["stored"] == 30
    served = sim.stats.received
    assert served >= 30 + 2  # every distinct prompt, and the two faults
    for lim in a.limits.values():
        s = await lim.fetch_statistics()
        assert (s["in_flight"], s["waiting"], s["in_flight_shared"]) == (0, 0, 0), s
    assert sum(lim.statistics()["rate_limited"] for lim in a.limits.values()) == 1
    day = (await a.budget.fetch_statistics())["buckets"]["day"]
    assert day["reserved_usd"] == 0 and 0 < day["spent_usd"] <= LIMIT_USD

    # Another process: new objects, same Redis. The cache answers everything, and the
    # budget and limiters see the first process's state.
    async with b.client(sim) as client_b:
        again = {p: await client_b.complete(p, temperature=0) for p in answers}
    assert all(r.cached for r in again.values())
    assert {p: r.text for p, r in again.items()} == answers
    assert sim.stats.received == served
    day_b = (await b.budget.fetch_statistics())["buckets"]["day"]
    assert day_b["spent_usd"] == pytest.approx(day["spent_usd"])
    shared = await b.limits["oa"].fetch_statistics("sim-oa")
    assert shared["requests_level"] > 0  # the first process's requests, seen from here


@pytest.mark.redis
async def test_shared_limiters_cache_and_budget_work_together_and_clean_up(
    redis_url: str,
) -> None:
    before = other_tasks()
    tag = uuid.uuid4().hex[:12]
    prompts = [f"Shared question {i % 30}?" for i in range(60)]
    async with Simulator(latency=0.004, output_tokens=5) as sim:
        a, b = Shared(redis_url, tag), Shared(redis_url, tag)
        try:
            await run_two_processes(sim, a, b, prompts)
        finally:
            await a.aclose()
            await b.aclose()
        await sim.wait_for(lambda st: st.in_flight == 0 and st.connections == 0, timeout=2)
    with anyio.fail_after(5):
        while await connected_clients(redis_url) > 0:  # noqa: ASYNC110 - a short poll
            await anyio.sleep(0.01)
    assert other_tasks() - before == set()


async def test_an_unreachable_shared_limiter_fails_the_request_closed_and_typed() -> None:
    """No Redis behind the limiter: the request fails at once with ``LimiterUnavailable``
    (not retried, not sent), and its budget reservation is given back."""
    from asyncllm import MemoryBudget

    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    async with Simulator(output_tokens=2) as sim:
        table = prices()
        budget = MemoryBudget(SpendLimit(1.0), pricing=table)
        limiter = RedisRateLimiter(rpm=100, url=nowhere, key="nowhere", name="oa")
        client = Client(
            openai_compatible(sim), limits={"oa": limiter}, budget=budget, pricing=table, log=False
        )
        async with client:
            with anyio.fail_after(5), pytest.raises(LimiterUnavailable) as info:
                await client.complete("hi")
        await limiter.aclose()
        assert not isinstance(info.value, AllProvidersFailed)
        assert info.value.retryable and info.value.limiter == "oa" and "'oa'" in str(info.value)
        assert "127.0.0.1" not in str(info.value)  # where Redis is stays out of the message
        assert sim.stats.received == 0
        assert client.statistics()["counters"]["attempts"] == 1
        day: dict[str, Any] = budget.statistics()["buckets"]["day"]
        assert day["reserved_usd"] == 0 and day["spent_usd"] == 0
        assert limiter.statistics()["in_flight"] == 0 and limiter.statistics()["waiting"] == 0
