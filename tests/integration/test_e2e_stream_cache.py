"""Streaming through the response cache and a hedge, over real loopback HTTP.

A hedged stream (the primary stalls, the backup wins) is cached once it finished; the same
request streamed again replays it from the cache, chunk boundaries and all, marked
``cached``, without touching the server, the limiters or the budget. Identical streams in
flight share one upstream stream.
"""

from __future__ import annotations

from typing import Any

import anyio
from _e2e_helpers import (
    anthropic,
    assert_limiters_idle,
    openai_compatible,
    other_tasks,
    prices,
    reserved_usd,
)

from asyncllm import Client, Hedge, MemoryBudget, RateLimiter, Response, SpendLimit
from asyncllm.cache import ResponseCache
from asyncllm.testing import Fault, Simulator


async def read(client: Client, prompt: str) -> tuple[list[str], Response]:
    async with client.stream(prompt, temperature=0, max_tokens=12) as s:
        texts = [c.text async for c in s if c.text]
    assert s.response is not None
    return texts, s.response


def counts(client: Client, budget: MemoryBudget) -> tuple[Any, ...]:
    limiters = client.statistics()["providers"]
    return (
        tuple(p["limiter"]["acquired"] for p in limiters.values()),
        budget.statistics()["buckets"]["day"]["reservations"],
        client.statistics()["counters"]["attempts"],
    )


async def test_a_hedged_stream_is_cached_and_replayed_with_its_chunk_boundaries() -> None:
    before = other_tasks()
    async with Simulator(token_delay=0.003, output_tokens=8) as sim:
        table = prices()
        budget = MemoryBudget(SpendLimit(10.0), pricing=table)
        cache = ResponseCache()
        client = Client(
            [openai_compatible(sim), anthropic(sim)],
            strategy=Hedge(delay=0.05),
            limits={n: RateLimiter(rpm=60_000, max_concurrency=4, name=n) for n in ("oa", "an")},
            budget=budget,
            pricing=table,
            cache=cache,
            log=False,
        )
        async with client:
            sim.inject(Fault.stall(2.0))  # the primary stalls: the hedge answers
            texts, first = await read(client, "Tell me a story.")
            assert first.provider == "an" and not first.cached
            assert len(texts) == 8 and "".join(texts) == first.text
            # The leader's response is the orchestrator's: priced, with its request id.
            assert first.cost_usd is not None and first.cost_usd > 0
            assert first.request_id is not None and first.rate_limits is not None
            stats = await sim.wait_for(lambda st: st.disconnected == 1 and st.completed == 1, 2)
            assert stats.received == 2  # the stalled primary and the hedge
            assert client.statistics()["cache"]["stored"] == 1
            seen = counts(client, budget)

            # Replayed from the cache: same chunks, same boundaries, nothing touched.
            texts2, again = await read(client, "Tell me a story.")
            assert texts2 == texts
            assert again.cached and again.cost_usd == 0.0
            assert (again.text, again.usage, again.finish_reason, again.provider) == (
                first.text,
                first.usage,
                first.finish_reason,
                first.provider,
            )
            assert again.chunks == first.chunks
            # A complete() of the same request is answered by the streamed entry too.
            whole = await client.complete("Tell me a story.", temperature=0, max_tokens=12)
            assert whole.cached and whole.text == first.text
            assert sim.stats.received == 2 and counts(client, budget) == seen
            assert client.statistics()["cache"]["hits"] == 2
            assert_limiters_idle(client)
            assert reserved_usd(budget.statistics()) == 0
        await sim.wait_for(lambda st: st.connections == 0 and st.in_flight == 0, 2)
    assert other_tasks() - before == set()


async def test_identical_streams_in_flight_share_one_upstream_stream() -> None:
    before = other_tasks()
    async with Simulator(token_delay=0.01, output_tokens=6) as sim:
        table = prices()
        budget = MemoryBudget(SpendLimit(10.0), pricing=table)
        client = Client(
            [openai_compatible(sim), anthropic(sim)],
            strategy=Hedge(delay=1.0),
            budget=budget,
            pricing=table,
            cache=ResponseCache(),
            log=False,
        )
        got: list[tuple[list[str], Response]] = []

        async def one() -> None:
            got.append(await read(client, "Shared story."))

        async with client:
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(one)
            assert sim.stats.received == 1
            assert [t for t, _ in got] == [got[0][0]] * 3
            assert sorted(r.cached for _, r in got) == [False, True, True]
            assert sum(r.cost_usd or 0.0 for _, r in got) == next(
                r.cost_usd for _, r in got if not r.cached
            )
            cache = client.statistics()["cache"]
            assert (cache["misses"], cache["deduplicated"], cache["stored"]) == (1, 2, 1)
            assert budget.statistics()["buckets"]["day"]["reservations"] == 1
        await sim.wait_for(lambda st: st.connections == 0 and st.in_flight == 0, 2)
    assert other_tasks() - before == set()
