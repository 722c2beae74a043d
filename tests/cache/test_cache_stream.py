"""Streams: pass-through on a miss, replay with original boundaries on a hit, nothing stored
from a broken, cancelled, abandoned or unfinished stream, and shared identical streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _cachetest import ROUTE, caller, opener, req
from aiocache.base import BaseCache

from asyncllm import Chunk, RateLimited, ServerError, StreamBroken, ToolCallDelta, Usage
from asyncllm.cache import CachedStream, ResponseCache, ResponseSerializer
from asyncllm.testing import FakeProvider, FakeReply

TOKENS = ("The", " quick", " brown", " fox")


async def _read(cache: ResponseCache, provider: FakeProvider, **kw: Any) -> list[Chunk]:
    r = req()
    async with cache.stream(r, ROUTE, opener(provider, r), **kw) as s:
        return [c async for c in s]


async def test_a_miss_streams_through_unchanged_and_a_hit_replays_the_boundaries() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS, usage=Usage(7, 4))])
    r = req()
    async with ResponseCache() as cache:
        async with provider.stream(r) as direct:
            upstream = [c async for c in direct]
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            first = [c async for c in s]
            assert isinstance(s, CachedStream) and not s.cached
            assert s.response is not None and s.response.text == "The quick brown fox"
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            replay = [c async for c in s]
            assert isinstance(s, CachedStream) and s.cached
            assert s.response is not None and s.response.cached
    assert first == upstream
    assert replay == [
        *(Chunk(text=t) for t in TOKENS),
        Chunk(usage=Usage(7, 4), finish_reason="stop", raw_finish_reason="stop"),
    ]
    assert len(provider.calls) == 2  # the direct stream and the miss; the hit made none


async def test_a_completed_response_replays_as_a_stream_and_vice_versa() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS)])
    r = req()
    async with ResponseCache() as cache:
        await cache.complete(r, ROUTE, caller(provider, r))
        chunks = await _read(cache, provider)
        s_req = req("streamed first")
        async with cache.stream(s_req, ROUTE, opener(provider, s_req)) as s:
            [c async for c in s]
        hit = await cache.complete(s_req, ROUTE, caller(provider, s_req))
    assert [c.text for c in chunks[:-1]] == list(TOKENS)
    assert hit.cached and hit.chunks == TOKENS
    assert len(provider.calls) == 2


async def test_tool_calls_replay_as_one_delta_chunk() -> None:
    async def call() -> Any:
        from asyncllm import Response, ToolCall

        return Response(
            text="",
            finish_reason="tool_calls",
            usage=Usage(1, 1),
            provider="fake",
            model="fake-model",
            tool_calls=(ToolCall("c1", "f", '{"a":1}'), ToolCall("c2", "g", "{}")),
        )

    r = req()
    async with ResponseCache() as cache:
        await cache.complete(r, ROUTE, call)
        async with cache.stream(r, ROUTE, opener(FakeProvider(), r)) as s:
            chunks = [c async for c in s]
    assert chunks[0].tool_calls == (
        ToolCallDelta(index=0, id="c1", name="f", arguments='{"a":1}'),
        ToolCallDelta(index=1, id="c2", name="g", arguments="{}"),
    )
    assert chunks[-1].finish_reason == "tool_calls"


async def test_a_broken_stream_is_not_stored() -> None:
    broken = FakeReply(tokens=TOKENS, error=ServerError("reset"), fail_after=2)
    provider = FakeProvider(replies=[broken, FakeReply(tokens=TOKENS)])
    r = req()
    seen: list[str] = []
    async with ResponseCache() as cache:
        with pytest.raises(StreamBroken):
            async with cache.stream(r, ROUTE, opener(provider, r)) as s:
                async for c in s:
                    seen.append(c.text)
        assert await cache.get(r, ROUTE) is None
        chunks = await _read(cache, provider)
        stats = cache.statistics()
    assert seen == ["The", " quick"]
    assert [c.text for c in chunks[:-1]] == list(TOKENS) and len(provider.calls) == 2
    assert stats["errors"] == 1 and stats["stored"] == 1


async def test_an_error_at_open_surfaces_on_enter_and_is_not_stored() -> None:
    provider = FakeProvider(replies=[RateLimited("slow down", retry_after=1.0), "ok"])
    r = req()
    async with ResponseCache() as cache:
        with pytest.raises(RateLimited):
            async with cache.stream(r, ROUTE, opener(provider, r)):
                pytest.fail("entered a stream that failed to open")
        assert await cache.get(r, ROUTE) is None
        assert [c.text for c in await _read(cache, provider)] == ["ok", ""]


@pytest.mark.looptime
async def test_a_consumer_that_stops_early_stores_nothing_and_closes_upstream() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS, token_delay=1.0)])
    r = req()
    async with ResponseCache() as cache:
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            async for _ in s:
                break
        await anyio.lowlevel.checkpoint()
        assert provider.open_streams == 0 and provider.cancelled == 1
        assert await cache.get(r, ROUTE) is None
        assert cache.statistics()["in_flight"] == 0


@pytest.mark.looptime
async def test_a_cancelled_consumer_stores_nothing_and_closes_upstream() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS, token_delay=1.0)])
    r = req()
    got: list[str] = []
    async with ResponseCache() as cache:
        with anyio.move_on_after(2.5):
            async with cache.stream(r, ROUTE, opener(provider, r)) as s:
                async for c in s:
                    got.append(c.text)
        await anyio.lowlevel.checkpoint()
        assert provider.open_streams == 0 and provider.cancelled == 1
        assert await cache.get(r, ROUTE) is None
    assert got == ["The", " quick", " brown"]


async def test_a_stream_without_finish_reason_is_not_stored() -> None:
    calls = 0

    @asynccontextmanager
    async def unfinished() -> AsyncIterator[AsyncIterator[Chunk]]:
        nonlocal calls
        calls += 1

        async def gen() -> AsyncIterator[Chunk]:
            yield Chunk(text="half an ans")

        yield gen()

    r = req()
    async with ResponseCache() as cache:
        for _ in range(2):
            async with cache.stream(r, ROUTE, unfinished) as s:
                assert [c.text async for c in s] == ["half an ans"]
        assert await cache.get(r, ROUTE) is None
    assert calls == 2


@pytest.mark.looptime
async def test_identical_streams_share_one_upstream_stream() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS, token_delay=1.0)])
    r = req()
    results: dict[str, list[Chunk]] = {}

    async def consume(name: str, start: float) -> None:
        await anyio.sleep(start)
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            results[name] = [c async for c in s]

    async with ResponseCache() as cache:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, "leader", 0.0)
            tg.start_soon(consume, "late", 2.5)  # joins after three chunks went by
        stats = cache.statistics()
    assert len(provider.calls) == 1
    assert results["late"] == results["leader"] and len(results["leader"]) == 5
    assert stats["deduplicated"] == 1 and stats["stored"] == 1


@pytest.mark.looptime
async def test_the_leader_leaving_does_not_end_the_shared_stream() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS, token_delay=1.0)])
    r = req()
    follower: list[str] = []

    async def leader() -> None:
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            async for c in s:
                if c.text == " quick":  # t=1.0, after the follower joined at t=0.5
                    break

    async def follow() -> None:
        await anyio.sleep(0.5)
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            follower.extend([c.text async for c in s])

    async with ResponseCache() as cache:
        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            tg.start_soon(follow)
        assert (await cache.get(r, ROUTE)) is not None  # the follower read it to the end
    assert follower == [*TOKENS, ""]
    assert len(provider.calls) == 1 and provider.completed == 1


@pytest.mark.looptime
async def test_every_subscriber_leaving_cancels_the_shared_stream() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS, token_delay=1.0)])
    r = req()

    async def consume(limit: float) -> None:
        with anyio.move_on_after(limit):
            async with cache.stream(r, ROUTE, opener(provider, r)) as s:
                async for _ in s:
                    pass

    async with ResponseCache() as cache:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, 1.5)
            tg.start_soon(consume, 2.5)
        await anyio.lowlevel.checkpoint()
        assert provider.cancelled == 1 and provider.open_streams == 0
        assert await cache.get(r, ROUTE) is None


async def test_bypass_and_uncacheable_streams_pass_the_upstream_object_through() -> None:
    provider = FakeProvider()
    r, hot = req(), req(temperature=1.0)
    async with ResponseCache() as cache:
        async with cache.stream(r, ROUTE, opener(provider, r), mode="bypass") as s:
            assert not isinstance(s, CachedStream)
            assert [c.text async for c in s] == ["Hello", ",", " world", "!", ""]
        async with cache.stream(hot, ROUTE, opener(provider, hot)) as s:
            assert not isinstance(s, CachedStream)
            [c async for c in s]
        assert await cache.get(r, ROUTE) is None and await cache.get(hot, ROUTE) is None
        stats = cache.statistics()
    assert stats["bypasses"] == 1 and stats["uncacheable"] == 1


async def test_refresh_stream_rewrites_the_entry() -> None:
    provider = FakeProvider(replies=["old", "new"])
    r = req()
    async with ResponseCache() as cache:
        await _read(cache, provider)
        refreshed = await _read(cache, provider, mode="refresh")
        hit = await cache.complete(r, ROUTE, caller(provider, r))
    assert refreshed[0].text == "new" and hit.text == "new" and hit.cached


async def test_without_entering_streams_pass_through_and_are_stored() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS)])
    r = req()
    cache = ResponseCache()  # not entered: no shared streams, but still recorded
    async with cache.stream(r, ROUTE, opener(provider, r)) as s:
        first = [c async for c in s]
        assert not isinstance(s, CachedStream) and s.response is not None
    async with cache.stream(r, ROUTE, opener(provider, r)) as s:
        replay = [c async for c in s]
        assert isinstance(s, CachedStream) and s.cached
    assert first == replay and len(provider.calls) == 1


async def test_without_entering_a_stream_left_early_is_not_stored() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS)])
    r = req()
    cache = ResponseCache()
    async with cache.stream(r, ROUTE, opener(provider, r)) as s:
        async for _ in s:
            break
    assert await cache.get(r, ROUTE) is None and provider.open_streams == 0


class _SlowWrites(BaseCache):  # type: ignore[misc]
    """A network backend whose writes take 0.3 s."""

    NAME = "slow-writes"

    def __init__(self) -> None:
        super().__init__(serializer=ResponseSerializer(), timeout=None)
        self.data: dict[str, Any] = {}

    async def _get(self, key: str, encoding: object = "utf-8", _conn: object = None) -> Any:
        return self.data.get(key)

    async def _set(self, key: str, value: object, ttl: object = None, **kw: object) -> bool:
        await anyio.sleep(0.3)
        self.data[key] = value
        return True


@pytest.mark.looptime
async def test_a_reader_cancelled_while_its_finished_stream_is_stored_keeps_the_entry() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=TOKENS)], latency=0.0, token_delay=0.0)
    r = req()
    async with ResponseCache(_SlowWrites(), op_timeout=1.0) as cache:
        started = anyio.current_time()
        with anyio.move_on_after(0.1):  # fires while the answer is being written
            async with cache.stream(r, ROUTE, opener(provider, r)) as s:
                [c async for c in s]
        assert anyio.current_time() - started >= 0.1  # the reader's deadline passed
        stored = await cache.get(r, ROUTE)
    assert stored is not None and stored.text == "The quick brown fox"
    assert len(provider.calls) == 1
