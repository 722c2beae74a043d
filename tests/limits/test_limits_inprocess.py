"""In-process RateLimiter: rates, bursts, tokens, FIFO, concurrency (fake loop time)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from asyncllm import InvalidRequestError, Usage
from asyncllm.abc import Limiter
from asyncllm.limits import RateLimiter

pytestmark = pytest.mark.looptime


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_satisfies_limiter_protocol() -> None:
    lim: Limiter = RateLimiter(rpm=10)
    assert lim.statistics()["acquired"] == 0


async def test_request_rate_held_over_long_run() -> None:
    # 120 requests/period of 1 s, default capacity 0.5 * 120 = 60: 2000 requests must take
    # (2000 - 60) / 120 s and never exceed capacity + rate * window in any window.
    lim = RateLimiter(rpm=120, period=1.0)
    times: list[float] = []

    async def one() -> None:
        async with lim.acquire(0, model="m"):
            times.append(now())

    async with anyio.create_task_group() as tg:
        for _ in range(2000):
            tg.start_soon(one)
    assert len(times) == 2000
    assert times == sorted(times)
    assert times[59] == 0.0 and times[60] > 0.0  # the burst, then the sustained rate
    assert times[-1] == pytest.approx((2000 - 60) / 120, abs=1e-6)
    for window in (0.5, 1.0, 3.0):
        j = 0
        for i, t in enumerate(times):
            while times[j] < t - window:
                j += 1
            assert i - j + 1 <= 60 + 120 * window + 1e-6
    assert lim.statistics()["wait_time_max"] == pytest.approx(times[-1])


async def test_burst_after_idle_is_capped() -> None:
    lim = RateLimiter(rpm=10, period=1.0, burst=0.5)  # capacity 5
    for _ in range(5):
        async with lim.acquire(0, model="m"):
            pass
    assert now() == 0.0
    async with lim.acquire(0, model="m"):
        pass
    assert now() == pytest.approx(0.1)
    await asyncio.sleep(100)  # a long idle refills only up to the capacity
    t0 = now()
    for _ in range(6):
        async with lim.acquire(0, model="m"):
            pass
    assert now() - t0 == pytest.approx(0.1)


async def test_token_reservation_and_refund() -> None:
    lim = RateLimiter(tpm=1000, period=1.0, burst=1.0)
    async with lim.acquire(900, model="m") as p:
        p.settle(Usage(input_tokens=60, output_tokens=40))  # 100 used: 800 come back on exit
    assert lim.statistics()["tokens_level"] == pytest.approx(100)
    async with lim.acquire(900, model="m"):
        pass  # fits at once thanks to the refund; unsettled: stays spent
    assert now() == 0.0
    assert lim.statistics()["tokens_level"] == pytest.approx(1000)
    async with lim.acquire(500, model="m") as p:
        p.settle(None)  # unknown usage: the reservation stays spent
    assert now() == pytest.approx(0.5)
    stats = lim.statistics()
    assert stats["tokens_level"] == pytest.approx(1000)
    assert stats["tokens_reserved"] == 2300 and stats["tokens_refunded"] == 800


async def test_usage_above_reservation_is_charged() -> None:
    lim = RateLimiter(tpm=1000, period=1.0, burst=1.0)
    async with lim.acquire(100, model="m") as p:
        p.settle(Usage(input_tokens=500, output_tokens=200, cache_write_tokens=100))
    stats = lim.statistics()
    assert stats["tokens_level"] == pytest.approx(800)
    assert stats["tokens_extra_charged"] == 700
    async with lim.acquire(300, model="m"):
        pass
    assert now() == pytest.approx(0.1)  # had to wait for 100 tokens to drain


async def test_fifo_big_reservation_is_not_overtaken() -> None:
    lim = RateLimiter(tpm=100, period=1.0, burst=1.0)
    order: list[str] = []
    async with lim.acquire(100, model="m"):
        pass  # bucket full

    async def take(label: str, tokens: int) -> None:
        async with lim.acquire(tokens, model="m"):
            order.append(label)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "big", 90)
        await asyncio.sleep(0)
        for i in range(20):
            tg.start_soon(take, f"small{i}", 1)
            await asyncio.sleep(0)
    # Small ones would fit after 0.01 s each, but wait behind the big one (0.9 s).
    assert order == ["big"] + [f"small{i}" for i in range(20)]
    assert now() == pytest.approx(0.9 + 20 * 0.01, abs=1e-6)


async def test_oversized_reservation_waits_for_empty_bucket() -> None:
    lim = RateLimiter(tpm=100, period=1.0, burst=0.5)  # capacity 50
    async with lim.acquire(30, model="m"):
        pass
    async with lim.acquire(80, model="m"):  # larger than the bucket: needs it empty
        pass
    assert now() == pytest.approx(0.3)
    async with lim.acquire(10, model="m"):  # level 80 > capacity: wait until 40
        pass
    assert now() == pytest.approx(0.3 + 0.4)


async def test_concurrency_limit() -> None:
    lim = RateLimiter(max_concurrency=3)
    active = peak = 0

    async def one() -> None:
        nonlocal active, peak
        async with lim.acquire(0, model="m"):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(1)
            active -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(one)
    assert peak == 3
    assert now() == pytest.approx(4.0)
    assert lim.statistics()["in_flight"] == 0


async def test_concurrency_slot_released_on_exception() -> None:
    lim = RateLimiter(max_concurrency=1)
    with pytest.raises(RuntimeError):
        async with lim.acquire(5, model="m"):
            raise RuntimeError("boom")
    assert lim.statistics()["in_flight"] == 0
    with anyio.fail_after(1):
        async with lim.acquire(5, model="m"):
            pass


async def test_per_model_lanes_are_independent() -> None:
    lim = RateLimiter(rpm=1, period=1.0, per_model=True, burst=1.0)
    async with lim.acquire(0, model="a"):
        pass
    async with lim.acquire(0, model="b"):
        pass
    assert now() == 0.0
    async with lim.acquire(0, model="a"):
        pass
    assert now() == pytest.approx(1.0)
    stats = lim.statistics()
    assert stats["acquired"] == 3 and set(stats["models"]) == {"a", "b"}


async def test_shared_lane_across_models_by_default() -> None:
    lim = RateLimiter(rpm=1, period=1.0, burst=1.0)
    async with lim.acquire(0, model="a"):
        pass
    async with lim.acquire(0, model="b"):
        pass
    assert now() == pytest.approx(1.0)


async def test_bad_reservation_is_a_typed_error() -> None:
    lim = RateLimiter(rpm=1)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(InvalidRequestError):
            lim.acquire(bad, model="m")  # type: ignore[arg-type]


async def test_permit_reports_wait_and_statistics() -> None:
    lim = RateLimiter(rpm=2, period=1.0, burst=0.5, max_concurrency=4, name="openai")
    async with lim.acquire(0, model="m") as p1:
        assert p1.waited == 0.0
    async with lim.acquire(0, model="m") as p2:
        assert p2.waited == pytest.approx(0.5)
    s = lim.statistics()
    assert s["name"] == "openai" and s["acquired"] == 2
    assert s["wait_time_total"] == pytest.approx(0.5)
    assert s["wait_time_avg"] == pytest.approx(0.25)
    assert s["requests_capacity"] == 1.0 and s["tokens_level"] is None
    assert s["waiting"] == 0 and s["rate_limited"] == 0 and s["paused_until"] is None
    assert "openai" in repr(lim)


async def test_injected_clock_drives_levels() -> None:
    t = [100.0]
    lim = RateLimiter(rpm=10, period=1.0, burst=1.0, clock=lambda: t[0])
    for _ in range(10):
        async with lim.acquire(0, model="m"):
            pass
    assert lim.statistics()["requests_level"] == pytest.approx(10)
    t[0] += 0.5
    assert lim.statistics()["requests_level"] == pytest.approx(5)
    t[0] -= 10  # a clock stepping back refills nothing
    assert lim.statistics()["requests_level"] == pytest.approx(5)
