"""Hedged requests: fixed and adaptive delays, the hedge allowance, errors, the limiter."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _orchfakes import RecordingLimiter, RecordingObserver, other_tasks

from asyncllm import ChatRequest, Client, ServerError
from asyncllm.orchestrator import Hedge
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime


def timed(name: str, latencies: list[float], starts: list[tuple[str, float]]) -> FakeProvider:
    """A fake whose i-th call takes latencies[i] (the last repeats), recording start times."""

    def handler(request: ChatRequest, i: int) -> FakeReply:
        starts.append((name, anyio.current_time()))
        return FakeReply(tokens=(name,), latency=latencies[min(i, len(latencies) - 1)])

    return FakeProvider(name, handler=handler)


async def test_fixed_delay_hedge_fires_after_the_delay(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [1.0], starts)
    b = timed("b", [0.1], starts)
    observer = RecordingObserver()
    async with Client([a, b], strategy=Hedge(delay=0.3), log=False, observers=[observer]) as client:
        response = await client.complete("hi")
        assert response.provider == "b"
        assert [n for n, _ in starts] == ["a", "b"]
        assert [t for _, t in starts] == pytest.approx([0.0, 0.3])
        assert float(looptime) == pytest.approx(0.4, abs=1e-3)
        assert (a.cancelled, a.open_streams) == (1, 0)
        assert sorted(observer.outcomes()) == [("a", "primary", "lost"), ("b", "hedge", "success")]
        assert client.statistics()["counters"]["hedge"] == 1
        assert not other_tasks()


async def test_no_hedge_when_the_primary_is_fast() -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [0.1], starts)
    b = timed("b", [0.1], starts)
    async with Client([a, b], strategy=Hedge(delay=0.3), log=False) as client:
        for _ in range(5):
            assert (await client.complete("hi")).provider == "a"
    assert b.calls == []


async def test_single_provider_hedges_to_itself(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [2.0, 0.1], starts)
    async with Client(a, strategy=Hedge(delay=0.5), log=False) as client:
        await client.complete("hi")
    assert [t for _, t in starts] == [pytest.approx(0.0), pytest.approx(0.5)]
    assert float(looptime) == pytest.approx(0.6, abs=1e-3)
    assert (a.cancelled, a.completed, a.open_streams) == (1, 1, 0)


async def test_max_attempts_bounds_the_backups() -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [5.0], starts)
    b = timed("b", [5.0], starts)
    c = timed("c", [5.0], starts)
    hedge = Hedge(delay=0.2, max_attempts=3, burst=5)
    async with Client([a, b, c], strategy=hedge, log=False) as client:
        await client.complete("hi")
    assert [(n, round(t, 3)) for n, t in starts] == [("a", 0.0), ("b", 0.2), ("c", 0.4)]


async def test_adaptive_delay_uses_the_observed_quantile(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    # Five fast answers (0.1 s) teach the window; the sixth call is slow.
    a = timed("a", [0.1] * 5 + [5.0], starts)
    b = timed("b", [0.1], starts)
    hedge = Hedge(delay="adaptive", quantile=0.95, min_samples=5, initial_delay=2.0)
    async with Client([a, b], strategy=hedge, log=False) as client:
        for _ in range(5):
            await client.complete("hi")
        assert b.calls == []
        t0 = float(looptime)
        response = await client.complete("hi")
        assert response.provider == "b"
        # Hedged after p95 of the window (0.1 s), not the initial 2 s.
        assert starts[-1][0] == "b"
        assert starts[-1][1] == pytest.approx(t0 + 0.1, abs=1e-3)
        stats = client.statistics()["providers"]["a"]["latency"]["fake-model:total"]
        assert stats["samples"] >= 5


async def test_adaptive_delay_uses_the_initial_delay_until_warm(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [5.0], starts)
    b = timed("b", [0.1], starts)
    hedge = Hedge(delay="adaptive", min_samples=5, initial_delay=2.0)
    async with Client([a, b], strategy=hedge, log=False) as client:
        await client.complete("hi")
    assert starts[1][0] == "b"
    assert starts[1][1] == pytest.approx(2.0)


async def test_hedge_budget_caps_backups_at_a_fraction_of_requests() -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [1.0], starts)  # always slow: every request wants a backup
    b = timed("b", [0.1], starts)
    hedge = Hedge(delay=0.1, allowance=0.1, burst=1.0)
    async with Client([a, b], strategy=hedge, log=False) as client:
        for _ in range(20):
            await client.complete("hi")
        stats = client.statistics()
    # One backup from the initial burst, then one per ten primaries.
    assert len(b.calls) == 2
    assert stats["counters"]["hedge"] == 2
    (budget,) = stats["hedge_allowance"].values()
    assert budget["denied"] == 18


async def test_a_retryable_error_fires_the_next_attempt_at_once(looptime: float) -> None:
    starts: list[tuple[str, float]] = []

    def failing(request: ChatRequest, i: int) -> FakeReply:
        starts.append(("a", anyio.current_time()))
        return FakeReply(latency=0.05, error=ServerError("down"))

    a = FakeProvider("a", handler=failing)
    b = timed("b", [0.1], starts)
    async with Client([a, b], strategy=Hedge(delay=1.0), log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    assert starts[1][0] == "b"
    assert starts[1][1] == pytest.approx(0.05)  # not after the 1 s delay
    assert float(looptime) == pytest.approx(0.15, abs=1e-3)


async def test_hedge_waiting_for_the_limiter_does_not_deadlock_and_is_refunded(
    looptime: float,
) -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [1.0], starts)
    limiter = RecordingLimiter(concurrency=1)  # the primary holds the only slot
    hedge = Hedge(delay=0.1, allowance=0.0, burst=1.0)
    async with Client(a, strategy=hedge, limits={"a": limiter}, log=False) as client:
        response = await client.complete("hi")
        assert response.provider == "a"
        assert float(looptime) == pytest.approx(1.0, abs=1e-3)
        assert len(starts) == 1  # the backup never went out
        assert limiter.in_use == 0
        (budget,) = client.statistics()["hedge_allowance"].values()
        assert budget["level"] == pytest.approx(1.0)  # its token was refunded
        assert budget["spent"] == 0
        assert not other_tasks()


async def test_hedge_timer_starts_when_the_limiter_admits_the_primary(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [0.2], starts)
    b = timed("b", [0.1], starts)
    limiter = RecordingLimiter(concurrency=1)
    async with Client([a, b], strategy=Hedge(delay=0.5), limits={"a": limiter}, log=False) as c:
        assert limiter.semaphore is not None
        await limiter.semaphore.acquire()  # someone else holds a's only slot for 2 s

        async def release_later() -> None:
            await anyio.sleep(2.0)
            assert limiter.semaphore is not None
            limiter.semaphore.release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(release_later)
            response = await c.complete("hi")
    # Queued 2 s in the limiter, then 0.2 s on the wire: under the 0.5 s delay, no hedge.
    assert response.provider == "a"
    assert b.calls == []
    assert float(looptime) == pytest.approx(2.2, abs=1e-3)


async def test_hedge_records_lost_primaries_as_censored_samples() -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [3.0], starts)
    b = timed("b", [0.1], starts)
    async with Client([a, b], strategy=Hedge(delay=0.5), log=False) as client:
        await client.complete("hi")
        window: dict[str, Any] = client.statistics()["providers"]["a"]["latency"]
    # The lost primary ran 0.6 s before it was cancelled: that lower bound is kept.
    assert window["fake-model:total"]["p50"] == pytest.approx(0.6, abs=1e-3)
