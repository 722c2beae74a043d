"""Provider feedback: Retry-After pauses and rate-limit header corrections (fake loop time)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from asyncllm import RateLimitInfo
from asyncllm.limits import RateLimiter

pytestmark = pytest.mark.looptime


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_pause_holds_every_waiter_and_newcomer() -> None:
    lim = RateLimiter(rpm=100, period=1.0, burst=1.0)
    times: list[float] = []

    async def one() -> None:
        async with lim.acquire(0, model="m"):
            times.append(now())

    lim.pause(0.5, model="m")
    stats = lim.statistics()
    assert stats["rate_limited"] == 1
    assert stats["paused_until"] == pytest.approx(0.5) and stats["paused_for"] == pytest.approx(0.5)
    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(one)
        await asyncio.sleep(0.2)
        assert times == []  # nobody started during the pause
        assert lim.statistics()["waiting"] == 30
        tg.start_soon(one)  # arrives during the pause: waits too
    # The pause marked the bucket full at t=0 (the provider's bucket is empty after a 429);
    # by t=0.5 half of it has drained, so all 31 start at 0.5, not before.
    assert times == [pytest.approx(0.5)] * 31
    assert lim.statistics()["paused_until"] is None


async def test_pause_resumes_at_sustained_rate_not_in_a_burst() -> None:
    lim = RateLimiter(rpm=100, period=1.0, burst=1.0)
    times: list[float] = []

    async def one() -> None:
        async with lim.acquire(0, model="m"):
            times.append(now())

    lim.pause(0.1, model="m")  # level 100 at t=0, 90 at t=0.1: room for 10 at once
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert times[:10] == [pytest.approx(0.1)] * 10
    assert times[10:] == [pytest.approx(0.1 + 0.01 * k) for k in range(1, 11)]


async def test_shorter_pause_does_not_cut_a_longer_one() -> None:
    lim = RateLimiter(max_concurrency=10)
    lim.pause(2.0, model="m")
    lim.pause(0.5, model="m")
    async with lim.acquire(0, model="m"):
        pass
    assert now() == pytest.approx(2.0)
    assert lim.statistics()["rate_limited"] == 2


async def test_pause_during_wait_extends_it() -> None:
    lim = RateLimiter(rpm=1, period=1.0, burst=1.0)
    async with lim.acquire(0, model="m"):
        pass
    async with anyio.create_task_group() as tg:

        async def late() -> None:
            async with lim.acquire(0, model="m"):
                assert now() == pytest.approx(3.0)

        tg.start_soon(late)
        await asyncio.sleep(0.5)
        lim.pause(2.5, model="m")


async def test_pause_is_per_model_lane() -> None:
    lim = RateLimiter(rpm=100, period=1.0, per_model=True)
    lim.pause(5, model="a")
    async with lim.acquire(0, model="b"):
        pass
    assert now() == 0.0
    async with lim.acquire(0, model="a"):
        pass
    assert now() == pytest.approx(5.0)


async def test_headers_lower_the_room() -> None:
    lim = RateLimiter(rpm=10, tpm=1000, period=1.0, burst=1.0)
    lim.observe(RateLimitInfo(remaining_requests=2, remaining_tokens=100), model="m")
    s = lim.statistics()
    assert s["requests_level"] == pytest.approx(8) and s["tokens_level"] == pytest.approx(900)
    assert s["header_corrections"] == 2
    async with lim.acquire(0, model="m"):
        pass
    async with lim.acquire(0, model="m"):
        pass
    assert now() == 0.0
    async with lim.acquire(0, model="m"):
        pass
    assert now() == pytest.approx(0.1)


async def test_headers_never_raise_the_room() -> None:
    lim = RateLimiter(rpm=10, period=1.0, burst=1.0)
    for _ in range(10):
        async with lim.acquire(0, model="m"):
            pass
    lim.observe(RateLimitInfo(limit_requests=10, remaining_requests=10), model="m")
    assert lim.statistics()["requests_level"] == pytest.approx(10)
    assert lim.statistics()["provider_limits"] == {"limit_requests": 10}


async def test_old_headers_are_credited_with_refill() -> None:
    lim = RateLimiter(rpm=10, period=1.0, burst=1.0)
    # "0 left" as of 0.5 s ago: the provider has refilled 5 since, so 5 fit now.
    lim.observe(RateLimitInfo(remaining_requests=0), model="m", age=0.5)
    assert lim.statistics()["requests_level"] == pytest.approx(5)


async def test_stale_and_out_of_order_headers_are_ignored() -> None:
    lim = RateLimiter(rpm=10, period=1.0, burst=1.0)
    lim.observe(RateLimitInfo(remaining_requests=0), model="m", age=1.5)  # older than a period
    assert lim.statistics()["requests_level"] == 0
    lim.observe(RateLimitInfo(remaining_requests=9), model="m", age=0.1)
    lim.observe(RateLimitInfo(remaining_requests=0), model="m", age=0.3)  # older than applied
    s = lim.statistics()
    assert s["requests_level"] == pytest.approx(1.0 - 10 * 0.1)  # only the fresh one applied
    assert s["stale_headers_ignored"] == 2


async def test_header_correction_delays_queued_waiter() -> None:
    lim = RateLimiter(rpm=10, period=1.0, burst=1.0)
    for _ in range(10):
        async with lim.acquire(0, model="m"):
            pass
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:

        async def waiter() -> None:
            async with lim.acquire(0, model="m"):
                admitted.append(now())

        tg.start_soon(waiter)  # would start at 0.1
        await asyncio.sleep(0.05)
        # Someone else on the key used capacity: the provider has 0 left.
        lim.observe(RateLimitInfo(remaining_requests=0), model="m")
        await asyncio.sleep(0.07)
        lim.observe(RateLimitInfo(remaining_requests=0), model="m")  # at 0.12: next at 0.22
    assert admitted == [pytest.approx(0.22)]
