"""In-flight de-duplication of ``complete``: one upstream call per key, cancellation-safe."""

from __future__ import annotations

import traceback
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _cachetest import ROUTE, caller, req

from asyncllm import Response, ServerError
from asyncllm.cache import CacheClosed, MemoryBackend, ResponseCache
from asyncllm.testing import FakeProvider


@pytest.mark.looptime
async def test_a_thousand_identical_requests_make_one_call() -> None:
    provider = FakeProvider(latency=1.0)
    r = req()
    results: list[Response] = []

    async def one() -> None:
        results.append(await cache.complete(r, ROUTE, caller(provider, r)))

    async with ResponseCache() as cache:
        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(one)
        stats = cache.statistics()
    assert len(provider.calls) == 1
    assert len(results) == 1000 and {x.text for x in results} == {"Hello, world!"}
    # The caller that started the call gets its response; the others rode along for free.
    assert sum(not x.cached for x in results) == 1
    assert all(x.cost_usd == 0.0 for x in results if x.cached)
    assert stats["misses"] == 1 and stats["deduplicated"] == 999 and stats["stored"] == 1
    assert stats["in_flight"] == 0


@pytest.mark.looptime
async def test_first_caller_cancelled_the_others_still_get_the_answer() -> None:
    provider = FakeProvider(latency=1.0)
    r = req()
    results: list[Response] = []
    first_cancelled = False

    async def first() -> None:
        nonlocal first_cancelled
        with anyio.move_on_after(0.5) as scope:
            await cache.complete(r, ROUTE, caller(provider, r))
        first_cancelled = scope.cancelled_caught

    async def other() -> None:
        results.append(await cache.complete(r, ROUTE, caller(provider, r)))

    async with ResponseCache() as cache, anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.sleep(0.1)
        for _ in range(20):
            tg.start_soon(other)
    assert first_cancelled
    assert len(results) == 20 and all(x.text == "Hello, world!" for x in results)
    assert len(provider.calls) == 1 and provider.completed == 1 and provider.cancelled == 0


@pytest.mark.looptime
async def test_last_waiter_leaving_cancels_the_upstream_call() -> None:
    provider = FakeProvider(latency=5.0)
    r = req()

    async def impatient(after: float) -> None:
        with anyio.move_on_after(after):
            await cache.complete(r, ROUTE, caller(provider, r))

    async with ResponseCache() as cache:
        async with anyio.create_task_group() as tg:
            for after in (0.5, 1.0, 1.5):
                tg.start_soon(impatient, after)
        await anyio.lowlevel.checkpoint()  # let the cancelled call unwind
        assert provider.cancelled == 1 and provider.open_streams == 0
        assert cache.statistics()["in_flight"] == 0
        # Nothing was stored, and the next request starts a fresh call that succeeds.
        response = await cache.complete(r, ROUTE, caller(provider, r))
    assert response.text == "Hello, world!" and not response.cached
    assert len(provider.calls) == 2


@pytest.mark.looptime
async def test_an_error_reaches_every_waiter_and_is_not_cached() -> None:
    provider = FakeProvider(latency=1.0, replies=[ServerError("boom", status_code=500), "ok"])
    r = req()
    errors: list[BaseException] = []

    depths: list[int] = []

    async def one() -> None:
        try:
            await cache.complete(r, ROUTE, caller(provider, r))
        except ServerError as exc:
            errors.append(exc)
            depths.append(len(traceback.extract_tb(exc.__traceback__)))

    async with ResponseCache() as cache:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
        assert len(errors) == 10 and all(isinstance(e, ServerError) for e in errors)
        # The shared exception's traceback does not grow with every waiter that raises it.
        assert max(depths) == min(depths)
        assert len(provider.calls) == 1
        after = await cache.complete(r, ROUTE, caller(provider, r))
        stats = cache.statistics()
    assert after.text == "ok" and len(provider.calls) == 2
    assert stats["errors"] == 1 and stats["stored"] == 1


@pytest.mark.looptime
async def test_a_hit_never_calls_upstream() -> None:
    provider = FakeProvider()
    r = req()
    calls = 0

    async def counting() -> Response:
        nonlocal calls
        calls += 1
        return await provider.complete(r)

    async with ResponseCache() as cache:
        first = await cache.complete(r, ROUTE, counting)
        hits = [await cache.complete(r, ROUTE, counting) for _ in range(5)]
    assert calls == 1 and not first.cached
    assert all(h.cached and h.cost_usd == 0.0 and h.text == first.text for h in hits)
    assert all(h.usage == first.usage for h in hits)
    # Each hit is its own object: one caller annotating it does not touch another's.
    assert len({id(h) for h in hits}) == 5


@pytest.mark.looptime
async def test_shutdown_wakes_waiters_with_cache_closed() -> None:
    provider = FakeProvider(latency=10.0)
    r = req()
    outcome: list[BaseException] = []

    async def waiter(cache: ResponseCache) -> None:
        try:
            await cache.complete(r, ROUTE, caller(provider, r))
        except CacheClosed as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg, ResponseCache() as cache:
        tg.start_soon(waiter, cache)
        await anyio.sleep(1.0)
    assert len(outcome) == 1
    assert provider.cancelled == 1 and provider.open_streams == 0


@pytest.mark.looptime
async def test_without_entering_the_cache_calls_are_still_shared() -> None:
    provider = FakeProvider(latency=1.0)
    r = req()
    cache = ResponseCache()  # never entered: the first caller hosts the shared call
    results: list[Response] = []

    async def one() -> None:
        results.append(await cache.complete(r, ROUTE, caller(provider, r)))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(one)
    hit = await cache.complete(r, ROUTE, caller(provider, r))
    assert len(provider.calls) == 1 and len(results) == 100 and hit.cached
    assert cache.statistics()["deduplicated"] == 99


@pytest.mark.looptime
async def test_without_entering_a_cancelled_host_hands_over_to_a_waiter() -> None:
    provider = FakeProvider(latency=1.0)
    r = req()
    cache = ResponseCache()
    results: list[Response] = []

    async def host() -> None:
        with anyio.move_on_after(0.5):
            await cache.complete(r, ROUTE, caller(provider, r))

    async def other() -> None:
        results.append(await cache.complete(r, ROUTE, caller(provider, r)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(host)
        await anyio.sleep(0.1)
        for _ in range(5):
            tg.start_soon(other)
    # Nobody failed: the call was cancelled with its host and started once more.
    assert len(results) == 5 and {x.text for x in results} == {"Hello, world!"}
    assert len(provider.calls) == 2 and provider.cancelled == 1 and provider.completed == 1
    stats = cache.statistics()
    assert stats["restarts"] == 5 and stats["in_flight"] == 0


@pytest.mark.looptime
async def test_without_entering_the_last_caller_leaving_cancels_the_call() -> None:
    provider = FakeProvider(latency=5.0)
    r = req()
    cache = ResponseCache()
    with anyio.move_on_after(1.0):
        await cache.complete(r, ROUTE, caller(provider, r))
    assert provider.cancelled == 1 and provider.open_streams == 0
    assert cache.statistics()["in_flight"] == 0


class _SlowReads(MemoryBackend):
    """Reads the store at once but answers a second later: a slow network backend."""

    async def _get(self, key: str, encoding: Any = "utf-8", _conn: Any = None) -> Any:
        value = await super()._get(key, encoding=encoding, _conn=_conn)
        await anyio.sleep(1.0)
        return value


@pytest.mark.looptime
async def test_a_call_that_finishes_during_a_lookup_is_not_repeated() -> None:
    # B looks up before A's call starts and gets its (empty) answer after A's call has
    # finished, been stored and left the in-flight table: B must use A's answer.
    provider = FakeProvider(latency=0.1)
    r = req()
    results: list[Response] = []

    async def one(delay: float) -> None:
        await anyio.sleep(delay)
        results.append(await cache.complete(r, ROUTE, caller(provider, r)))

    async with ResponseCache(_SlowReads()) as cache, anyio.create_task_group() as tg:
        tg.start_soon(one, 0.0)
        tg.start_soon(one, 0.5)
    assert len(provider.calls) == 1
    assert [x.cached for x in results] == [False, True]
