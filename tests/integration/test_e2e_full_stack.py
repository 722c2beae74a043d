"""Everything on at once, over real loopback HTTP: hedging, per-provider limiters, the
response cache, a budget with prices, metrics; a few hundred requests through
``client.map`` against the simulator with a heavy-tailed latency and injected faults.

What it proves: every request ends answered or with a typed error, and afterwards every
layer is back at rest (no permit, no reservation, no shared call, no server-side request,
no task) and the layers' counters agree with each other and with the server's.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from _e2e_helpers import (
    anthropic,
    assert_limiters_idle,
    openai_compatible,
    other_tasks,
    prices,
    reserved_usd,
)

from asyncllm import (
    AsyncLLMError,
    Client,
    Hedge,
    MemoryBudget,
    MetricsObserver,
    RateLimiter,
    RetryPolicy,
    SpendLimit,
)
from asyncllm.cache import ResponseCache
from asyncllm.orchestrator import Result
from asyncllm.testing import FakeProvider, Fault, Simulator, heavy_tail

N_REQUESTS = 300
N_DISTINCT = 150
LIMIT_USD = 5.0


def inject_faults(sim: Simulator) -> None:
    """A 429 with Retry-After, a 500 and a dropped connection, three times over."""
    for _ in range(3):
        sim.inject(Fault.rate_limit(retry_after=0.05))
        sim.inject(Fault.server_error(500))
        sim.inject(Fault.drop_mid_stream(after=2))


def metric_sum(metrics: dict[str, Any], key: str) -> int:
    return sum(m[key] for models in metrics["providers"].values() for m in models.values())


def metric_errors(metrics: dict[str, Any], name: str) -> int:
    return sum(
        m["errors"].get(name, 0)
        for models in metrics["providers"].values()
        for m in models.values()
    )


async def test_full_stack_map_settles_every_layer() -> None:
    before = other_tasks()
    async with Simulator(
        latency=heavy_tail(0.004, slow=((0.10, 10.0), (0.01, 40.0))), output_tokens=6, seed=7
    ) as sim:
        table = prices()
        budget = MemoryBudget(SpendLimit(LIMIT_USD), pricing=table)
        metrics = MetricsObserver()
        cache = ResponseCache()
        limits = {
            "oa": RateLimiter(rpm=60_000, tpm=30_000_000, max_concurrency=8, name="oa"),
            "an": RateLimiter(rpm=60_000, max_concurrency=8, name="an"),
        }
        client = Client(
            [openai_compatible(sim), anthropic(sim)],
            strategy=Hedge(delay=0.02, allowance=0.5),
            retry=RetryPolicy(base_delay=0.01, max_delay=0.05),
            limits=limits,
            budget=budget,
            pricing=table,
            cache=cache,
            observers=[metrics],
            log=False,
            timeout=10,
        )
        order = list(range(N_DISTINCT)) * 2
        random.Random(3).shuffle(order)  # repeats spread over the run: hits and joins
        prompts = [f"Question number {k}?" for k in order]
        results: list[Result] = []
        inject_faults(sim)
        async with client:
            async with client.map(prompts, concurrency=32, temperature=0, max_tokens=8) as out:
                async for r in out:
                    results.append(r)
                    if len(results) == N_REQUESTS // 3:
                        inject_faults(sim)  # a second wave, in the middle of the run
            stats = client.statistics()
            assert_limiters_idle(client)
            budget_stats = budget.statistics()
            m = metrics.statistics()
        await sim.wait_for(lambda st: st.in_flight == 0 and st.connections == 0, timeout=5)
        server = sim.stats

    # Every request answered, or failed with a typed error.
    assert sorted(r.index for r in results) == list(range(N_REQUESTS))
    failed = [r for r in results if not r.ok]
    assert all(isinstance(r.error, AsyncLLMError) for r in failed), [r.error for r in failed]
    ok = [r.response for r in results if r.response is not None]
    assert len(ok) >= N_REQUESTS - 10
    assert all(r.text and r.finish_reason in ("stop", "length") for r in ok)
    fresh = [r for r in ok if not r.cached]
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in fresh)
    assert all(r.cost_usd == 0.0 for r in ok if r.cached)

    # The cache: every request was a hit, joined a call in flight, or started one; only
    # the calls it started cost anything.
    c = stats["cache"]
    assert c["hits"] + c["deduplicated"] + c["misses"] == N_REQUESTS
    # (a prompt whose shared call failed is a miss again the next time)
    assert N_DISTINCT <= c["misses"] <= N_DISTINCT + len(failed) and c["in_flight"] == 0
    assert len(fresh) <= c["misses"]
    assert len(ok) - len(fresh) <= c["hits"] + c["deduplicated"]
    if not failed:
        assert len(fresh) == c["misses"] and c["stored"] == N_DISTINCT

    # The orchestrator ran exactly the cache misses.
    counters = stats["counters"]
    assert counters["requests"] == c["misses"]

    # Budget: nothing reserved any more; spent within the limit and at least what metrics
    # saw priced (lost hedges are booked at their worst case: their usage is unknown).
    day = budget_stats["buckets"]["day"]
    assert reserved_usd(budget_stats) == 0
    assert 0 < day["spent_usd"] <= LIMIT_USD
    assert day["spent_usd"] >= m["totals"]["cost_usd"] - 1e-9
    assert day["reservations"] == counters["attempts"]
    # Metrics price every attempt that finished (also a hedge that finished a hair after
    # the winner): at least what the callers were charged.
    assert m["totals"]["cost_usd"] >= sum(r.cost_usd or 0.0 for r in fresh) - 1e-9

    # Metrics agree with the client's counters and with themselves.
    req = m["requests"]
    # Every logical request reaches the observers: the orchestrated ones and those the
    # cache answered (hits and followers of a shared call).
    assert req["started"] == counters["requests"] + req["cache_hits"]
    assert req["cache_hits"] == len(ok) - len(fresh) and req["in_flight"] == 0
    assert req["succeeded"] + req["failed"] + req["cancelled"] == req["started"]
    assert req["failed"] <= len(failed)  # followers of a failed shared call fail too
    assert m["totals"]["attempts"] == counters["attempts"]
    assert metric_sum(m, "in_flight") == 0
    assert metric_sum(m, "lost") == counters["lost"]
    fired = sum(x["hedges"]["fired"] for p in m["providers"].values() for x in p.values())
    # The observer sees every backup started; the client counts it as a hedge once sent.
    assert fired == counters["hedge_scheduled"]
    assert counters["hedge"] + counters["hedge_unsent"] == counters["hedge_scheduled"]

    # ...and with the server: every attempt that was not cancelled in a limiter queue
    # reached it, and nothing reached it that was not an attempt.
    unsent_at_most = metric_sum(m, "lost") + metric_sum(m, "cancelled")
    assert counters["attempts"] - unsent_at_most <= server.received <= counters["attempts"]
    # A backup counted as unsent never reached the server.
    assert server.received <= counters["attempts"] - counters["hedge_unsent"]
    assert server.completed >= metric_sum(m, "successes") >= len(fresh)
    assert server.faults == 18 and sim.pending_faults == 0
    # A 429 pauses its provider's limiter once per 429 the client read.
    limited = metric_errors(m, "RateLimited")
    assert limited == sum(s["rate_limited"] for s in (lim.statistics() for lim in limits.values()))
    assert 1 <= limited <= server.rate_limited == 6
    # The 500s and dropped connections reached the client as typed errors, and were retried.
    assert metric_errors(m, "ServerError") >= 1
    assert metric_errors(m, "ConnectionFailed") + metric_errors(m, "StreamBroken") >= 1
    assert counters["fallback"] + counters["retry"] >= 1

    # Nothing left running.
    assert other_tasks() - before == set()


async def test_metrics_count_the_clients_cache_hits() -> None:
    metrics = MetricsObserver()
    async with Client(
        FakeProvider("a"), cache=ResponseCache(), observers=[metrics], log=False
    ) as client:
        await client.complete("same", temperature=0)
        hit = await client.complete("same", temperature=0)
    assert hit.cached and client.statistics()["cache"]["hits"] == 1
    assert metrics.statistics()["requests"]["cache_hits"] == 1


async def test_an_answer_cut_off_after_its_headers_is_booked_as_spent() -> None:
    """The provider answered 200 and generated the text; the connection broke while the
    body was arriving. That attempt was billed: the budget must not record it as free."""
    async with Simulator(output_tokens=6) as sim:
        table = prices()
        budget = MemoryBudget(SpendLimit(LIMIT_USD), pricing=table)
        client = Client(
            openai_compatible(sim),
            retry=RetryPolicy(max_retries=0),
            budget=budget,
            pricing=table,
            log=False,
        )
        async with client:
            sim.inject(Fault.drop_mid_stream(after=2))
            with pytest.raises(AsyncLLMError):
                await client.complete("hello", max_tokens=8)
        assert sim.stats.dropped == 1
    assert budget.statistics()["buckets"]["day"]["spent_usd"] > 0
