"""RedisRateLimiter against a real redis-server: shared budgets, feedback, cancellation.

Several limiter instances with their own connections stand in for processes here; the
multi-process run against the simulator is in ``test_limits_redis_sim.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from asyncllm import RateLimitInfo, Usage
from asyncllm.limits import RedisRateLimiter

pytestmark = pytest.mark.redis

Factory = Callable[..., RedisRateLimiter]


@pytest.fixture
async def make(redis_url: str) -> AsyncIterator[Factory]:
    """Limiters on one fresh key, each with its own connection pool (like processes)."""
    key = f"test-{uuid.uuid4().hex}"
    made: list[RedisRateLimiter] = []

    def factory(**kw: Any) -> RedisRateLimiter:
        kw.setdefault("key", key)
        lim = RedisRateLimiter(url=redis_url, **kw)
        made.append(lim)
        return lim

    yield factory
    for lim in made:
        await lim.aclose()


async def test_two_instances_share_one_request_budget(make: Factory) -> None:
    # 100 requests/s, capacity 10: 80 acquisitions over two "processes" need ~0.7 s.
    a, b = make(rpm=20, period=0.2, burst=0.5), make(rpm=20, period=0.2, burst=0.5)
    stamps: list[float] = []

    async def one(lim: RedisRateLimiter) -> None:
        async with lim.acquire(0, model="m"):
            stamps.append(time.monotonic())

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(80):
            tg.start_soon(one, a if i % 2 else b)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.7 * 0.95
    assert elapsed < 3.0  # no stall: roughly the budget's pace
    stamps.sort()
    # Client-side stamps jitter a little around the server's decisions: allow 3 extra.
    for i, t in enumerate(stamps):
        in_window = sum(1 for u in stamps[: i + 1] if u >= t - 0.2)
        assert in_window <= 10 + 100 * 0.2 + 3
    sa, sb = a.statistics(), b.statistics()
    assert sa["acquired"] + sb["acquired"] == 80
    assert sa["backend"] == "redis" and sa["waiting"] == 0 and sa["in_flight"] == 0


async def test_tokens_refund_through_redis(make: Factory) -> None:
    a, b = make(tpm=1000, period=10.0, burst=1.0), make(tpm=1000, period=10.0, burst=1.0)
    async with a.acquire(900, model="m") as p:
        p.settle(Usage(input_tokens=50, output_tokens=50))
    await a.fetch_statistics()  # the exit does not wait for Redis; the refund is sent soon
    with anyio.fail_after(0.5):  # 800 came back: fits at once on the other instance
        async with b.acquire(850, model="m"):
            pass
    s = await b.fetch_statistics()
    assert s["models"]["*"]["tokens_level"] == pytest.approx(950, abs=2)


async def test_concurrency_leases_across_instances(make: Factory) -> None:
    a, b = make(max_concurrency=2), make(max_concurrency=2)
    active = peak = 0

    async def one(lim: RedisRateLimiter) -> None:
        nonlocal active, peak
        async with lim.acquire(0, model="m"):
            active += 1
            peak = max(peak, active)
            await anyio.sleep(0.05)
            active -= 1

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(one, a if i % 2 else b)
    assert peak == 2
    await b.fetch_statistics()  # releases reach Redis asynchronously: b's are sent now
    s = await a.fetch_statistics()
    assert s["models"]["*"]["in_flight_shared"] == 0


async def test_lease_of_a_crashed_holder_expires(make: Factory) -> None:
    crashed = make(max_concurrency=1, lease_ttl=0.3)
    other = make(max_concurrency=1, lease_ttl=0.3, poll_interval=0.02)
    await crashed.acquire(0, model="m").__aenter__()  # never released: the "process died"
    t0 = time.monotonic()
    with anyio.fail_after(2):
        async with other.acquire(0, model="m"):
            pass
    assert time.monotonic() - t0 >= 0.25


async def test_pause_reaches_every_process(make: Factory) -> None:
    a, b = make(rpm=1000, period=1.0), make(rpm=1000, period=1.0)
    a.pause(0.4, model="m")
    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_enter_once, a)  # its first Redis call carries the pause
        await anyio.sleep(0.05)
        with anyio.fail_after(2):
            async with b.acquire(0, model="m"):
                waited = time.monotonic() - t0
    assert waited >= 0.35
    s = await b.fetch_statistics()
    assert s["models"]["*"]["rate_limited_shared"] == 1
    assert a.statistics()["rate_limited"] == 1


async def _enter_once(lim: RedisRateLimiter) -> None:
    async with lim.acquire(0, model="m"):
        pass


async def test_headers_lower_the_shared_level(make: Factory) -> None:
    a, b = make(rpm=10, period=1.0, burst=1.0), make(rpm=10, period=1.0, burst=1.0)
    a.observe(RateLimitInfo(remaining_requests=0), model="m")
    a.observe(RateLimitInfo(remaining_requests=5), model="m")  # a higher reading: ignored
    await a.fetch_statistics()
    t0 = time.monotonic()
    async with b.acquire(0, model="m"):
        pass
    assert time.monotonic() - t0 >= 0.08  # the bucket was full: one slot drains in 0.1 s
    a.observe(RateLimitInfo(remaining_requests=0), model="m", age=5.0)  # stale: ignored
    s = await a.fetch_statistics()
    assert s["models"]["*"]["requests_level"] < 10


async def test_cancelled_waiter_takes_nothing_and_passes_the_head(make: Factory) -> None:
    lim = make(rpm=2, period=1.0, burst=0.5)  # capacity 1, one slot per 0.5 s
    async with lim.acquire(0, model="m"):
        pass
    with anyio.move_on_after(0.1):
        async with lim.acquire(0, model="m"):  # the local head
            pytest.fail("admitted too early")
    with anyio.fail_after(1.0):  # the next waiter still gets in when the slot frees
        async with lim.acquire(0, model="m"):
            pass
    s = await lim.fetch_statistics()
    assert s["acquired"] == 2 and s["waiting"] == 0
    assert s["models"]["*"]["requests_level"] == pytest.approx(1, abs=0.05)


async def test_local_fifo_keeps_big_reservation_first(make: Factory) -> None:
    lim = make(tpm=100, period=1.0, burst=1.0)
    async with lim.acquire(100, model="m"):
        pass
    order: list[str] = []

    async def take(label: str, n: int) -> None:
        async with lim.acquire(n, model="m"):
            order.append(label)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "big", 40)
        await anyio.sleep(0.01)
        for i in range(5):
            tg.start_soon(take, f"s{i}", 1)
    assert order == ["big", "s0", "s1", "s2", "s3", "s4"]


async def test_cancelled_while_holding_releases_lease(make: Factory) -> None:
    lim = make(max_concurrency=1, tpm=1000, period=100.0, burst=1.0)
    with anyio.move_on_after(0.1):
        async with lim.acquire(500, model="m") as p:
            p.settle(Usage(input_tokens=100))
            await anyio.sleep(10)
    s = await lim.fetch_statistics()
    assert s["in_flight"] == 0 and s["models"]["*"]["in_flight_shared"] == 0
    assert s["models"]["*"]["tokens_level"] == pytest.approx(100, abs=2)


async def test_cancelled_exit_still_refunds(make: Factory) -> None:
    """The exit records the refund without awaiting, so no cancellation can lose it; the
    lane sends it (here no other caller ever asks again)."""
    lim = make(max_concurrency=1, tpm=1000, period=1000.0, burst=1.0)  # drains 1 token/s
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def worker() -> None:
            with scope:
                async with lim.acquire(500, model="m") as p:
                    p.settle(Usage(input_tokens=100))
                    scope.cancel()  # anyio cancellation pending at the exit
                    await anyio.sleep(10)

        tg.start_soon(worker)
    task = asyncio.ensure_future(_settle_small(lim, hold=10))
    await anyio.sleep(0.1)
    task.cancel()  # a bare asyncio task.cancel() while holding
    with pytest.raises(asyncio.CancelledError):
        await task
    flusher = lim._lane("m").flusher  # nobody else will ask: the lane's flusher sends it
    if flusher is not None:
        with anyio.fail_after(2):
            await flusher
    assert not lim._lane("m").unsent()
    s = await lim.fetch_statistics()
    assert s["models"]["*"]["tokens_level"] == pytest.approx(200, abs=2)
    assert s["models"]["*"]["in_flight_shared"] == 0


async def _settle_small(lim: RedisRateLimiter, hold: float = 0.0) -> None:
    async with lim.acquire(500, model="m") as p:
        p.settle(Usage(input_tokens=100))
        await anyio.sleep(hold)


async def test_per_model_keys_are_separate(make: Factory) -> None:
    lim = make(rpm=1, period=10.0, burst=1.0, per_model=True)
    with anyio.fail_after(1):
        async with lim.acquire(0, model="a"):
            pass
        async with lim.acquire(0, model="b"):
            pass
    s = lim.statistics()
    assert set(s["models"]) == {"a", "b"} and s["acquired"] == 2


async def test_release_rides_on_the_waiting_heads_next_call(make: Factory) -> None:
    lim = make(max_concurrency=1, tpm=1000, period=1000.0, burst=1.0)
    ops: list[str] = []
    real_call = lim._call

    async def spy(lane: Any, op: str, *args: Any, **kw: Any) -> dict[str, Any]:
        ops.append(op)
        return await real_call(lane, op, *args, **kw)

    lim._call = spy  # type: ignore[method-assign]
    holder = lim.acquire(500, model="m")
    p = await holder.__aenter__()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_enter_once, lim)  # blocked by the lease: the local head, polling
        await anyio.sleep(0.01)
        p.settle(Usage(input_tokens=100))
        await holder.__aexit__(None, None, None)  # recorded; the head sends it
    # holder's acquire, the waiter's refused attempt(s), then the attempt that carried the
    # release and was granted; no separate flush for the release.
    assert ops[0] == "acquire" and "flush" not in ops[:-1]
    s = await lim.fetch_statistics()
    assert s["models"]["*"]["tokens_level"] == pytest.approx(100, abs=2)
    assert s["models"]["*"]["in_flight_shared"] == 0 and s["in_flight"] == 0


async def test_unreachable_redis_fails_acquire_with_a_typed_error(redis_url: str) -> None:
    from _redis import free_port
    from redis.exceptions import ConnectionError as RedisConnectionError

    from asyncllm.limits import LimiterUnavailable

    lim = RedisRateLimiter(rpm=10, url=f"redis://127.0.0.1:{free_port()}/0", key="nowhere")
    try:
        with anyio.fail_after(5), pytest.raises(LimiterUnavailable) as info:
            async with lim.acquire(1, model="m"):
                pass
        assert isinstance(info.value.__cause__, RedisConnectionError)
        assert info.value.retryable and info.value.limiter == "nowhere"
        assert lim.statistics()["waiting"] == 0 and lim.statistics()["in_flight"] == 0
    finally:
        await lim.aclose()


async def test_refund_kept_pending_when_redis_fails_on_exit(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    lim = make(tpm=1000, period=1000.0, burst=1.0)

    async def redis_went_away(*args: Any, **kw: Any) -> Any:
        raise RedisConnectionError("redis went away")

    async with lim.acquire(500, model="m") as p:
        p.settle(Usage(input_tokens=100))
        monkeypatch.setattr(lim, "_redis", lambda: redis_went_away)
    # The exit did not raise (the answer was fine); the refund waits for the next call.
    monkeypatch.undo()
    assert lim._lane("m").pending.delta == -400
    s = await lim.fetch_statistics()
    assert s["models"]["*"]["tokens_level"] == pytest.approx(100, abs=2)
    assert not lim._lane("m").pending


async def test_cancelled_during_the_granting_call_gives_everything_back(make: Factory) -> None:
    lim = make(max_concurrency=1, tpm=1000, rpm=1000, period=1000.0, burst=1.0)
    real_call = lim._call
    in_call = anyio.Event()

    async def slow_call(lane: Any, op: str, *args: Any, **kw: Any) -> dict[str, Any]:
        if op == "acquire":
            in_call.set()
            await asyncio.sleep(0.2)  # the grant is decided while the caller is cancelled
        return await real_call(lane, op, *args, **kw)

    lim._call = slow_call  # type: ignore[method-assign]
    task = asyncio.ensure_future(_settle_small(lim))
    with anyio.fail_after(5):
        await in_call.wait()
    task.cancel()  # a bare asyncio cancel, mid-call
    with pytest.raises(asyncio.CancelledError):
        await task
    lim._call = real_call  # type: ignore[method-assign]
    s = await lim.fetch_statistics()
    shared = s["models"]["*"]
    assert shared["in_flight_shared"] == 0 and s["in_flight"] == 0 and s["acquired"] == 0
    assert shared["tokens_level"] == pytest.approx(0, abs=1)
    assert shared["requests_level"] == pytest.approx(0, abs=0.01)
