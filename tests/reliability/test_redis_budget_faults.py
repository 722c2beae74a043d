"""RedisBudget against a real redis-server that is frozen (SIGSTOP), killed and restarted.

Nothing holds a caller past a short bound, nothing booked is dropped, no reservation
survives the outage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _redis_ctl import RedisProc, controlled_redis
from structlog.testing import capture_logs

from asyncllm import BudgetExceeded, ChatRequest, Client, Message, Usage
from asyncllm.cost import BudgetUnavailable, ModelPrice, Prices, RedisBudget, SpendLimit
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.redis

PRICES = Prices({("openai", "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000)})
KW: dict[str, Any] = {"provider": "openai", "kind": "openai", "model": "m", "local": False}
REQ = ChatRequest(messages=(Message("user", "hi"),), max_tokens=10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProc]:
    with controlled_redis(tmp_path) as r:
        yield r


def budget(url: str, **kw: Any) -> RedisBudget:
    kw.setdefault("timeout", 0.3)
    kw.setdefault("settle_timeout", 0.2)
    return RedisBudget(url, SpendLimit(100.0), pricing=PRICES, name="faults", **kw)


async def test_a_frozen_redis_refuses_fast_and_then_at_once(redis: RedisProc) -> None:
    b = budget(redis.url)
    async with b.reserve(REQ, **KW) as res:  # healthy: connects, loads the scripts
        res.settle(0.001)
    redis.freeze()
    try:
        t0 = time.monotonic()
        with capture_logs(), pytest.raises(BudgetUnavailable):
            async with b.reserve(REQ, **KW):
                pass
        first = time.monotonic() - t0
        t0 = time.monotonic()
        for _ in range(50):  # the breaker answers without waiting on Redis again
            with capture_logs(), pytest.raises(BudgetUnavailable):
                async with b.reserve(REQ, **KW):
                    pass
        rest = time.monotonic() - t0
    finally:
        redis.thaw()
    assert first < 1.0 and rest < 0.5, (first, rest)
    assert b.statistics()["redis"]["trips"] == 1
    await b.aclose()


async def test_on_redis_error_allow_lets_attempts_through(redis: RedisProc) -> None:
    b = budget(redis.url, on_redis_error="allow")
    redis.kill()
    with capture_logs() as logs:
        async with b.reserve(REQ, **KW) as res:
            res.settle(0.001)
    assert "budget.unavailable" in [e["event"] for e in logs]
    await b.aclose()


async def test_the_callers_deadline_cancels_a_reservation_waiting_on_redis(
    redis: RedisProc,
) -> None:
    b = budget(redis.url, timeout=30.0)  # only the caller's deadline can cut this short
    async with b.reserve(REQ, **KW) as res:
        res.settle(0.001)
    redis.freeze()
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.3):
                async with b.reserve(REQ, **KW):
                    pass
        assert time.monotonic() - t0 < 1.0
        assert b.statistics()["pending_settlements"] == 1  # its release, for after the thaw
    finally:
        redis.thaw()
    async with b.reserve(REQ, **KW) as res:  # flushes the release first
        res.settle(0.001)
    stats = (await b.fetch_statistics())["buckets"]["day"]
    assert stats["reserved_usd"] == 0 and stats["spent_usd"] == pytest.approx(0.002)
    assert b.statistics()["pending_settlements"] == 0
    await b.aclose()


async def test_booking_a_finished_answer_does_not_wait_for_a_frozen_redis(
    redis: RedisProc,
) -> None:
    b = budget(redis.url)
    with capture_logs() as logs:
        async with b.reserve(REQ, **KW) as res:
            redis.freeze()  # the answer arrives while Redis is frozen
            res.settle(0.005)
            t0 = time.monotonic()
        held = time.monotonic() - t0
    redis.thaw()
    assert held < 0.6, held
    assert "budget.settle_deferred" in [e["event"] for e in logs]
    assert b.statistics()["pending_settlements"] == 1
    await b.aclose()  # books what was deferred
    check = budget(redis.url)
    stats = (await check.fetch_statistics())["buckets"]["day"]
    assert stats["spent_usd"] == pytest.approx(0.005) and stats["reserved_usd"] == 0
    await check.aclose()


async def test_killed_and_restarted_redis_recovers_after_the_cool_down(
    redis: RedisProc,
) -> None:
    b = budget(redis.url)
    redis.kill()
    with capture_logs(), pytest.raises(BudgetUnavailable):
        async with b.reserve(REQ, **KW):
            pass
    redis.start()
    deadline = time.monotonic() + 5
    while True:  # refused during the cool-down, then a probe gets through
        try:
            async with b.reserve(REQ, **KW) as res:
                res.settle(0.001)
            break
        except BudgetUnavailable:
            assert time.monotonic() < deadline
            await anyio.sleep(0.05)
    assert b.statistics()["redis"]["tripped"] is False
    await b.aclose()


async def test_client_load_through_a_freeze_holds_no_caller_and_loses_no_booking(
    redis: RedisProc,
) -> None:
    b = budget(redis.url)
    usage = Usage(input_tokens=5, output_tokens=5)
    provider = FakeProvider(
        "openai", kind="openai", model="m", latency=0.05,
        handler=lambda r, i: FakeReply(usage=usage),
    )  # fmt: skip
    answered: list[float] = []
    refused = 0
    worst_wait = 0.0

    async with Client(provider, budget=b, pricing=PRICES, timeout=2.0, log=False) as client:

        async def one(i: int) -> None:
            nonlocal refused, worst_wait
            await anyio.sleep(i * 0.005)
            t0 = time.monotonic()
            try:
                r = await client.complete("hi", max_tokens=10)
                answered.append(r.cost_usd or 0.0)
            except BudgetExceeded:
                refused += 1
            except Exception as exc:  # AllProvidersFailed of BudgetUnavailable
                assert all(isinstance(e, BudgetExceeded) for e in getattr(exc, "exceptions", ()))
                refused += 1
            worst_wait = max(worst_wait, time.monotonic() - t0)

        async def chaos() -> None:
            await anyio.sleep(0.2)
            redis.freeze()
            await anyio.sleep(0.6)
            redis.thaw()

        with capture_logs():
            async with anyio.create_task_group() as tg:
                tg.start_soon(chaos)
                for i in range(300):
                    tg.start_soon(one, i)
            # After the thaw: one more request flushes what was deferred.
            await anyio.sleep(1.0)
            answered.append((await client.complete("hi", max_tokens=10)).cost_usd or 0.0)
    await b.aclose()
    assert refused > 0 and len(answered) > 50
    assert worst_wait < 1.5, worst_wait  # nobody waited out a socket timeout per request
    check = budget(redis.url)
    stats = (await check.fetch_statistics())["buckets"]["day"]
    await check.aclose()
    assert stats["reserved_usd"] == 0
    assert stats["spent_usd"] == pytest.approx(sum(answered), abs=1e-9)


async def test_a_release_that_overtakes_its_frozen_reservation_cancels_it(
    redis: RedisProc,
) -> None:
    # A caller timed out while Redis was frozen; its reservation script runs only after
    # the thaw, possibly after the release the caller queued. The release leaves a
    # tombstone, so the late reservation is not applied.
    b = budget(redis.url)
    now = b._clock()
    limit = b.limits[0]
    targets = [b._target(limit, str(limit.name), now)]
    assert await b._book(0, "late-rid", targets, release=True)
    keys = [k for t in targets for k in t.keys]
    args = [repr(now), 10**7, "late-rid", repr(now + 900), 1, *b._args(targets)]
    assert list(await b._reserve(keys=keys, args=args)) == [2]
    stats = (await b.fetch_statistics())["buckets"]["day"]
    assert stats["reserved_usd"] == 0
    await b.aclose()
