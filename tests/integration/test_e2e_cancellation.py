"""A caller cancelled at any point leaves nothing behind: no limiter slot or waiter, no
budget reservation, no cache waiter or shared call, no open provider stream, no request
still being served by the simulator, no task.

Points covered: queued in the limiter, waiting on the cache's shared in-flight call,
mid-stream of a hedged (and cached) stream, and in the middle of ``client.map``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
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
    Client,
    Hedge,
    MemoryBudget,
    MetricsObserver,
    ModelPrice,
    Prices,
    RateLimiter,
    SpendLimit,
)
from asyncllm.cache import ResponseCache
from asyncllm.testing import FakeProvider, FakeReply, Fault, Simulator


@pytest.mark.looptime
async def test_cancelled_while_queued_in_the_limiter(looptime: Any) -> None:
    """The waiter took a budget reservation before queueing: cancelling it returns the
    reservation and the queue place, sends nothing and costs nothing."""
    table = Prices({("a", "fake-model"): ModelPrice(1_000.0, 1_000.0)})
    budget = MemoryBudget(SpendLimit(100.0), pricing=table)
    limiter = RateLimiter(max_concurrency=1, name="a")
    metrics = MetricsObserver()
    provider = FakeProvider("a", replies=[FakeReply(latency=5.0)])
    async with Client(
        provider,
        limits={"a": limiter},
        budget=budget,
        pricing=table,
        observers=[metrics],
        log=False,
    ) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.complete, "the holder")
            await anyio.sleep(0.1)
            with anyio.move_on_after(1.0) as scope:
                await client.complete("the waiter")
            assert scope.cancelled_caught
            assert float(looptime) == pytest.approx(1.1)
            s = limiter.statistics()
            assert (s["waiting"], s["in_flight"], s["acquired"]) == (0, 1, 1)
            worst_case_of_one = reserved_usd(budget.statistics())
            assert worst_case_of_one > 0
            assert budget.statistics()["buckets"]["day"]["reservations"] == 2
        assert_limiters_idle(client)
    day = budget.statistics()["buckets"]["day"]
    assert day["reserved_usd"] == 0
    assert len(provider.calls) == 1 and provider.open_streams == 0
    m = metrics.statistics()
    assert day["spent_usd"] == pytest.approx(m["totals"]["cost_usd"])  # the holder only
    assert (m["requests"]["succeeded"], m["requests"]["cancelled"]) == (1, 1)
    assert m["providers"]["a"]["fake-model"]["cancelled"] == 1
    assert m["providers"]["a"]["fake-model"]["in_flight"] == 0


@asynccontextmanager
async def full_client(
    sim: Simulator, *, strategy: Any = "fallback", **kw: Any
) -> AsyncIterator[tuple[Client, MemoryBudget, MetricsObserver]]:
    """A client over both simulated vendors with limiters, a budget, a cache and metrics."""
    table = prices()
    budget = MemoryBudget(SpendLimit(10.0), pricing=table)
    metrics = MetricsObserver()
    client = Client(
        [openai_compatible(sim), anthropic(sim)],
        strategy=strategy,
        limits={n: RateLimiter(rpm=60_000, max_concurrency=4, name=n) for n in ("oa", "an")},
        budget=budget,
        pricing=table,
        cache=ResponseCache(),
        observers=[metrics],
        log=False,
        **kw,
    )
    async with client:
        yield client, budget, metrics


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (cheap, in-process state) for up to two seconds."""
    with anyio.fail_after(2):
        while not condition():  # noqa: ASYNC110 - polling in-process counters in a test
            await anyio.sleep(0.001)


def assert_at_rest(client: Client, budget: MemoryBudget, metrics: MetricsObserver) -> None:
    assert_limiters_idle(client)
    assert reserved_usd(budget.statistics()) == 0
    assert client.statistics()["cache"]["in_flight"] == 0
    m = metrics.statistics()
    assert m["requests"]["in_flight"] == 0
    assert all(x["in_flight"] == 0 for p in m["providers"].values() for x in p.values())


async def test_cancelled_while_waiting_on_the_cache_shared_call() -> None:
    """A follower that leaves does not disturb the leader; when every waiter has left, the
    shared upstream call is cancelled and its connection closes at the server."""
    before = other_tasks()
    async with Simulator(latency=0.3, output_tokens=3) as sim:
        async with full_client(sim) as (client, budget, metrics):
            answers: list[str] = []

            async def leader(prompt: str) -> None:
                answers.append((await client.complete(prompt, temperature=0)).text)

            # 1. the follower leaves, the leader gets its answer
            follower = anyio.CancelScope()

            async def follow() -> None:
                with follower:
                    await client.complete("shared question", temperature=0)

            async with anyio.create_task_group() as tg:
                tg.start_soon(leader, "shared question")
                await sim.wait_for(lambda st: st.in_flight == 1, timeout=2)
                tg.start_soon(follow)
                await until(lambda: client.statistics()["cache"]["deduplicated"] == 1)
                follower.cancel()  # waiting on the shared call
            assert follower.cancelled_caught
            assert len(answers) == 1 and answers[0]
            cache = client.statistics()["cache"]
            assert (cache["misses"], cache["deduplicated"], cache["stored"]) == (1, 1, 1)
            assert sim.stats.disconnected == 0 and sim.stats.completed == 1

            # 2. every waiter leaves: the shared call is cancelled upstream
            with anyio.CancelScope() as both:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(leader, "abandoned question")
                    tg.start_soon(leader, "abandoned question")
                    await sim.wait_for(lambda st: st.in_flight == 1, timeout=2)
                    await until(lambda: client.statistics()["cache"]["deduplicated"] == 2)
                    both.cancel()
            stats = await sim.wait_for(lambda st: st.disconnected == 1, timeout=2)
            assert stats.in_flight == 0 and stats.completed == 1
            assert len(answers) == 1
            assert client.statistics()["cache"]["stored"] == 1  # nothing half-done stored
            assert_at_rest(client, budget, metrics)
            # Every caller that left is one cancelled request: the follower of part 1 and
            # both callers of part 2 (the shared upstream call is not a request of its own).
            assert metrics.statistics()["requests"]["cancelled"] == 3
        await sim.wait_for(lambda st: st.connections == 0, timeout=2)
    assert other_tasks() - before == set()


@pytest.mark.parametrize("how", ["break", "cancel"])
async def test_cancelled_mid_stream_of_a_hedged_cached_stream(how: str) -> None:
    """The primary stalls, the hedge commits and streams; the primary is closed at once,
    and the caller leaving mid-stream closes the hedge's stream too. Nothing is cached."""
    before = other_tasks()
    async with Simulator(token_delay=0.02, output_tokens=40) as sim:
        sim.inject(Fault.stall(3.0))  # the primary's request
        async with full_client(sim, strategy=Hedge(delay=0.05)) as (client, budget, metrics):
            got: list[str] = []
            with anyio.CancelScope() as scope:
                async with client.stream("a long story", temperature=0, max_tokens=40) as s:
                    async for chunk in s:
                        got.append(chunk.text)
                        if len(got) == 5:
                            if how == "break":
                                break
                            scope.cancel()  # the next await raises
            assert scope.cancelled_caught == (how == "cancel")
            assert 1 <= len(got) < 40 and s.response is None
            stats = await sim.wait_for(lambda st: st.disconnected == 2, timeout=2)
            assert (stats.received, stats.completed, stats.in_flight) == (2, 0, 0)
            assert_at_rest(client, budget, metrics)
            cache = client.statistics()["cache"]
            assert cache["stored"] == 0 and cache["entries"] == 0
            m = metrics.statistics()
            assert m["requests"]["abandoned"] + m["requests"]["cancelled"] == 1
            assert m["providers"]["oa"]["sim-oa"]["lost"] == 1  # the stalled primary
            assert m["providers"]["an"]["sim-an"]["hedges"]["fired"] == 1
            assert budget.statistics()["buckets"]["day"]["spent_usd"] > 0  # billed, unknown
        await sim.wait_for(lambda st: st.connections == 0, timeout=2)
    assert other_tasks() - before == set()


@pytest.mark.parametrize("how", ["break", "cancel"])
async def test_cancelled_in_the_middle_of_map(how: str) -> None:
    """Leaving ``client.map`` early cancels what is in flight everywhere: the simulator
    sees those requests disconnect, and every layer is back at rest."""
    before = other_tasks()
    async with Simulator(latency=0.15, output_tokens=3) as sim:
        async with full_client(sim) as (client, budget, metrics):
            got = 0
            prompts = [f"item {i}" for i in range(40)]
            with anyio.CancelScope() as scope:
                async with client.map(prompts, concurrency=8, temperature=0) as results:
                    async for r in results:
                        assert r.ok, r.error
                        got += 1
                        if got == 3:
                            await sim.wait_for(lambda st: st.in_flight >= 1, timeout=2)
                            if how == "break":
                                break
                            scope.cancel()  # the next await raises
            assert scope.cancelled_caught == (how == "cancel")
            assert got < 40
            stats = await sim.wait_for(
                lambda st: st.in_flight == 0 and st.received == st.completed + st.disconnected,
                timeout=2,
            )
            assert stats.disconnected >= 1
            assert_at_rest(client, budget, metrics)
            m = metrics.statistics()
            req = m["requests"]
            # Cancelled: those being served (disconnected) and those queued in a limiter.
            assert req["started"] == req["succeeded"] + req["cancelled"]
            assert req["cancelled"] >= stats.disconnected
            assert req["succeeded"] == stats.completed >= got
        await sim.wait_for(lambda st: st.connections == 0, timeout=2)
    assert other_tasks() - before == set()
