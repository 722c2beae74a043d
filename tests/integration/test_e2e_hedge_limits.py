"""Hedges and retries go through the same limiters as primary requests, and the hedge allowance
and the limiter never deadlock each other; a 429's Retry-After holds every waiter.

Fake event-loop time (looptime) and scripted providers: every instant asserted is exact.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _e2e_helpers import InFlightProbe, assert_limiters_idle, other_tasks

from asyncllm import ChatRequest, Client, Hedge, RateLimited, RateLimiter, RetryPolicy
from asyncllm.testing import FakeProvider, FakeReply, heavy_tail

pytestmark = pytest.mark.looptime


def probed(
    name: str, probe: list[InFlightProbe], starts: list[float], latencies: list[float]
) -> FakeProvider:
    """A provider whose i-th call takes ``latencies[i]`` (the last repeats); every call
    samples its limiter's in-flight count and records its start time."""

    def handler(request: ChatRequest, i: int) -> FakeReply:
        probe[0].sample()
        starts.append(anyio.current_time())
        return FakeReply(tokens=(name, "!"), latency=latencies[min(i, len(latencies) - 1)])

    return FakeProvider(name, handler=handler)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_hedge_queued_behind_its_own_primary_does_not_deadlock(
    stream: bool, looptime: Any
) -> None:
    """One provider, one concurrency slot, a hedge delay far below the primary's latency:
    the backup waits in the limiter for the slot the primary holds. The primary finishes,
    the queued backup is cancelled without being sent, and its hedge token comes back."""
    before = other_tasks()
    limiter = RateLimiter(max_concurrency=1, name="a")
    probe = [InFlightProbe(limiter)]
    starts: list[float] = []
    a = probed("a", probe, starts, [5.0, 0.1])
    async with Client(
        a, strategy=Hedge(delay=0.2), limits={"a": limiter}, log=False, timeout=30
    ) as client:
        with anyio.fail_after(10):
            if stream:
                async with client.stream("hi") as s:
                    text = "".join([c.text async for c in s])
            else:
                text = (await client.complete("hi")).text
        stats = client.statistics()
        assert_limiters_idle(client)
    assert text == "a!"
    assert float(looptime) == pytest.approx(5.0, abs=1e-3)
    assert starts == [pytest.approx(0.0)]  # the backup never went out...
    assert probe[0].max == 1
    assert limiter.statistics()["acquired"] == 1
    # ...it was scheduled (and queued), but is not counted as a hedge: it was never sent.
    counters = stats["counters"]
    assert (counters["hedge_scheduled"], counters["hedge"], counters["hedge_unsent"]) == (1, 0, 1)
    assert stats["hedge_allowance"]["0.05/10"]["spent"] == 0  # so its token was refunded
    assert a.open_streams == 0
    assert other_tasks() - before == set()


async def test_many_hedged_requests_share_two_single_slot_limiters(looptime: Any) -> None:
    """Forty concurrent hedged requests over two providers whose limiters each allow one
    request at a time, with heavy-tailed latency: all finish, neither limiter ever had two
    in flight, and every attempt that reached a provider was admitted by its limiter."""
    before = other_tasks()
    lims = {n: RateLimiter(max_concurrency=1, name=n) for n in ("a", "b")}
    probes = {n: [InFlightProbe(lim)] for n, lim in lims.items()}
    providers = []
    for n, seed in (("a", 1), ("b", 2)):

        def handler(request: ChatRequest, i: int, n: str = n) -> FakeReply:
            probes[n][0].sample()
            return FakeReply(tokens=(n,))

        providers.append(
            FakeProvider(n, handler=handler, latency=heavy_tail(0.05, jitter=0.2), seed=seed)
        )
    async with Client(
        providers,
        strategy=Hedge(delay=0.08, allowance=1.0, burst=40),
        limits=lims,
        log=False,
        timeout=120,
    ) as client:
        with anyio.fail_after(100):
            async with client.map([f"p{i}" for i in range(40)], concurrency=40) as results:
                out = [r async for r in results]
        stats = client.statistics()
        assert_limiters_idle(client)
    assert len(out) == 40 and all(r.ok for r in out), [r.error for r in out if not r.ok]
    assert all(p[0].max == 1 for p in probes.values())
    calls = sum(len(p.calls) for p in providers)
    admitted = sum(lim.statistics()["acquired"] for lim in lims.values())
    assert calls == admitted
    assert stats["counters"]["hedge"] >= 1  # the tail did make it hedge
    assert calls <= stats["counters"]["attempts"]
    assert all(p.open_streams == 0 for p in providers)
    assert other_tasks() - before == set()


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_429_retry_after_holds_every_waiter_and_the_retry_queues(
    stream: bool, looptime: Any
) -> None:
    """Three requests through a one-slot limiter; the first gets a 429 with Retry-After 2 s
    after 0.1 s. Nobody queued behind it may start before 2.1 s (the pause holds the slot's
    next owner too), and the retry of the first request goes through the limiter as well."""
    starts: list[tuple[int, float]] = []

    def handler(request: ChatRequest, i: int) -> FakeReply:
        starts.append((i, anyio.current_time()))
        if i == 0:
            return FakeReply(
                tokens=(), error=RateLimited("slow down", retry_after=2.0), latency=0.1
            )
        return FakeReply(tokens=("ok",), latency=0.1)

    provider = FakeProvider("a", handler=handler)
    limiter = RateLimiter(max_concurrency=1, name="a")
    async with Client(
        provider, limits={"a": limiter}, log=False, retry=RetryPolicy(base_delay=0.0)
    ) as client:

        async def one(k: int) -> None:
            if stream:
                async with client.stream(f"prompt {k}") as s:
                    assert [c.text async for c in s if c.text] == ["ok"]
            else:
                assert (await client.complete(f"prompt {k}")).text == "ok"

        async with anyio.create_task_group() as tg:
            for k in range(3):
                tg.start_soon(one, k)
                await anyio.lowlevel.checkpoint()  # queue them in order
        stats = limiter.statistics()
    assert starts[0] == (0, pytest.approx(0.0))
    assert [i for i, _ in starts] == [0, 1, 2, 3]
    assert all(t >= 2.1 - 1e-6 for _, t in starts[1:]), starts
    assert starts[1][1] == pytest.approx(2.1)  # then at the limiter's pace, one at a time
    assert stats["rate_limited"] == 1
    assert stats["acquired"] == 4  # three requests and the retry, all admitted by it
    assert stats["in_flight"] == 0 and stats["waiting"] == 0
