"""Cancellation at every point of an in-process permit's life (fake loop time)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from asyncllm import Usage
from asyncllm.limits import RateLimiter

pytestmark = pytest.mark.looptime


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_cancelled_while_waiting_takes_nothing() -> None:
    lim = RateLimiter(rpm=1, tpm=100, period=1.0, burst=1.0)
    async with lim.acquire(10, model="m"):
        pass
    before = lim.statistics()
    with anyio.move_on_after(0.5) as scope:
        async with lim.acquire(50, model="m"):
            pytest.fail("admitted while the bucket was full")
    assert scope.cancelled_caught
    after = lim.statistics()
    assert after["waiting"] == 0 and after["in_flight"] == 0
    assert after["acquired"] == before["acquired"] == 1
    assert after["tokens_reserved"] == 10
    async with lim.acquire(50, model="m"):
        pass
    assert now() == pytest.approx(1.0)  # waits only for its own slot, nothing extra


async def test_cancelled_head_does_not_block_the_queue() -> None:
    lim = RateLimiter(tpm=100, period=1.0, burst=1.0)
    async with lim.acquire(100, model="m"):
        pass
    small_at: list[float] = []
    async with anyio.create_task_group() as tg:
        big_scope = anyio.CancelScope()

        async def big() -> None:
            with big_scope:
                async with lim.acquire(90, model="m"):
                    pytest.fail("the big one should have been cancelled")

        async def small() -> None:
            async with lim.acquire(5, model="m"):
                small_at.append(now())

        tg.start_soon(big)
        await asyncio.sleep(0)
        tg.start_soon(small)
        await asyncio.sleep(0.2)
        assert small_at == []  # behind the big head (FIFO)
        big_scope.cancel()
    assert small_at == [pytest.approx(0.2)]  # 20 tokens had drained: fits at once
    assert lim.statistics()["waiting"] == 0


async def test_many_cancelled_waiters_leave_no_trace() -> None:
    lim = RateLimiter(rpm=1, period=1.0, burst=1.0)
    async with lim.acquire(0, model="m"):
        pass
    async with anyio.create_task_group() as tg:
        for _ in range(500):
            tg.start_soon(_enter, lim)
        await asyncio.sleep(0.1)
        assert lim.statistics()["waiting"] == 500
        tg.cancel_scope.cancel()
    s = lim.statistics()
    assert s["waiting"] == 0 and s["acquired"] == 1 and s["in_flight"] == 0
    async with lim.acquire(0, model="m"):
        pass
    assert now() == pytest.approx(1.0)


async def _enter(lim: RateLimiter) -> None:
    async with lim.acquire(0, model="m"):
        await asyncio.sleep(10)


async def test_admitted_then_cancelled_before_resuming_gives_everything_back() -> None:
    lim = RateLimiter(rpm=10, tpm=100, max_concurrency=1, period=1.0, burst=1.0)
    holder = lim.acquire(10, model="m")
    await holder.__aenter__()
    waiter = asyncio.ensure_future(_enter(lim))
    await asyncio.sleep(0.01)
    assert lim.statistics()["waiting"] == 1
    # Releasing admits the waiter synchronously (its future gets a result); cancelling it
    # before it ever runs must undo that admission.
    await holder.__aexit__(None, None, None)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    s = lim.statistics()
    assert s["in_flight"] == 0 and s["acquired"] == 1 and s["waiting"] == 0
    assert s["requests_level"] == pytest.approx(1 - 0.1)  # only the holder's request counts
    assert s["tokens_level"] == pytest.approx(10 - 1)


async def test_cancelled_while_holding_releases_slot_and_settles() -> None:
    lim = RateLimiter(tpm=1000, max_concurrency=1, period=100.0, burst=1.0)  # drains 10/s
    with anyio.move_on_after(1):
        async with lim.acquire(500, model="m") as p:
            p.settle(Usage(input_tokens=50, output_tokens=50))  # usage known, then cancelled
            await asyncio.sleep(10)
    s = lim.statistics()
    assert s["in_flight"] == 0
    assert s["tokens_refunded"] == 400
    with anyio.move_on_after(1):
        async with lim.acquire(500, model="m"):  # unknown usage: stays spent
            await asyncio.sleep(10)
    s = lim.statistics()
    assert s["in_flight"] == 0 and s["tokens_refunded"] == 400
    assert s["tokens_level"] == pytest.approx(500 - 10 - 400 + 500 - 10)
    with anyio.fail_after(0.01):  # the concurrency slot is free again
        async with lim.acquire(0, model="m"):
            pass


async def test_timeout_while_waiting_on_concurrency() -> None:
    lim = RateLimiter(max_concurrency=1)
    async with lim.acquire(0, model="m"):
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.3):
                async with lim.acquire(0, model="m"):
                    pass
        assert lim.statistics()["waiting"] == 0
    assert lim.statistics()["in_flight"] == 0


async def test_native_task_cancel_while_holding() -> None:
    lim = RateLimiter(max_concurrency=2)
    task = asyncio.ensure_future(_enter(lim))
    await asyncio.sleep(1)
    assert lim.statistics()["in_flight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lim.statistics()["in_flight"] == 0
