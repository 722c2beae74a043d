"""The bounded in-memory backend: LRU eviction on top of aiocache's TTL semantics."""

from __future__ import annotations

import anyio
import pytest
from _cachetest import ROUTE, caller, req
from aiocache import SimpleMemoryCache
from aiocache.serializers import JsonSerializer, PickleSerializer

from asyncllm import ConfigurationError
from asyncllm.cache import MemoryBackend, ResponseCache, ResponseSerializer
from asyncllm.testing import FakeProvider


async def test_lru_bound_evicts_the_least_recently_used() -> None:
    m = MemoryBackend(max_entries=3)
    for k in "abc":
        await m.set(k, k.upper())
    assert await m.get("a") == "A"  # "a" is now the most recent; "b" the least
    await m.set("d", "D")
    assert len(m) == 3 and m.evictions == 1
    assert await m.get("b") is None
    assert [await m.get(k) for k in "acd"] == ["A", "C", "D"]


async def test_overwriting_a_key_does_not_evict() -> None:
    m = MemoryBackend(max_entries=2)
    await m.set("a", 1)
    await m.set("b", 2)
    await m.set("a", 3)
    assert len(m) == 2 and m.evictions == 0 and await m.get("b") == 2


@pytest.mark.looptime
async def test_ttl_follows_the_loop_clock() -> None:
    m = MemoryBackend()
    await m.set("k", "v", ttl=5)
    await anyio.sleep(4.9)
    assert await m.get("k") == "v"
    await anyio.sleep(0.2)
    assert await m.get("k") is None and len(m) == 0


@pytest.mark.looptime
async def test_eviction_cancels_the_evicted_entry_timer() -> None:
    m = MemoryBackend(max_entries=1)
    await m.set("a", 1, ttl=1)
    await m.set("b", 2)  # evicts "a" and must cancel its timer
    await m.set("a", 3)  # evicts "b"; "a" now has no TTL
    await anyio.sleep(2)
    assert await m.get("a") == 3


@pytest.mark.looptime
async def test_clear_cancels_timers_so_they_cannot_delete_new_entries() -> None:
    m = MemoryBackend(max_entries=3)
    await m.set("k", "old", ttl=1)
    await m.clear()
    await m.set("k", "new")
    await anyio.sleep(2)
    assert await m.get("k") == "new"
    # Still an LRU after clear: order k, x, y; reading x makes k the oldest.
    await m.set("x", 1)
    await m.set("y", 2)
    assert await m.get("x") == 1
    await m.set("z", 3)
    assert len(m) == 3 and await m.get("k") is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_max_entries_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryBackend(max_entries=bad)  # type: ignore[arg-type]


async def test_the_response_cache_honours_the_bound() -> None:
    provider = FakeProvider()
    requests = [req(f"q{i}") for i in range(3)]
    async with ResponseCache(max_entries=2) as cache:
        for r in requests:
            await cache.complete(r, ROUTE, caller(provider, r))
        stats = cache.statistics()
        # q0 was evicted: asking again calls upstream; q2 is still there.
        await cache.complete(requests[2], ROUTE, caller(provider, requests[2]))
        await cache.complete(requests[0], ROUTE, caller(provider, requests[0]))
    assert stats["entries"] == 2 and stats["evictions"] == 1
    assert len(provider.calls) == 4


def test_backends_that_could_run_code_or_lose_types_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="ResponseSerializer"):
        ResponseCache(SimpleMemoryCache(serializer=PickleSerializer()))
    with pytest.raises(ConfigurationError, match="ResponseSerializer"):
        ResponseCache(SimpleMemoryCache(serializer=JsonSerializer()))
    with pytest.raises(ConfigurationError, match="aiocache"):
        ResponseCache({})  # type: ignore[arg-type]
    # aiocache's own memory cache (unbounded) and a JSON memory cache are accepted.
    ResponseCache(SimpleMemoryCache())
    ResponseCache(MemoryBackend(serializer=ResponseSerializer()))


async def test_a_json_memory_backend_round_trips_responses() -> None:
    provider = FakeProvider()
    r = req()
    async with ResponseCache(MemoryBackend(serializer=ResponseSerializer())) as cache:
        first = await cache.complete(r, ROUTE, caller(provider, r))
        hit = await cache.complete(r, ROUTE, caller(provider, r))
    assert hit.cached and hit.text == first.text and hit.chunks == first.chunks
    assert len(provider.calls) == 1


async def test_the_synchronous_read_returns_what_get_returns() -> None:
    backend = MemoryBackend(max_entries=2, namespace="ns:")
    read = backend.reader()
    assert read is not None
    await backend.set("a", "A")
    await backend.set("b", "B")
    assert read("a") == await backend.get("a") == "A"
    assert read("missing") is None and await backend.get("missing") is None
    await backend.set("c", "C")  # "b" was least recently read: evicted, as with get
    assert read("b") is None and read("a") == "A"


async def test_a_backend_whose_get_does_more_has_no_synchronous_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiocache.plugins import HitMissRatioPlugin
    from aiocache.serializers import JsonSerializer

    assert MemoryBackend(plugins=[HitMissRatioPlugin()]).reader() is None
    assert MemoryBackend(serializer=JsonSerializer()).reader() is None
    monkeypatch.setenv("AIOCACHE_DISABLE", "1")
    assert MemoryBackend().reader() is None


async def test_a_plugin_added_after_the_cache_was_built_sees_the_reads() -> None:
    from aiocache.plugins import HitMissRatioPlugin

    backend = MemoryBackend()
    provider = FakeProvider()
    async with ResponseCache(backend) as cache:
        plugin = HitMissRatioPlugin()
        backend.plugins = [plugin]  # after the cache was made: its reads still go through it
        await cache.complete(req("hi"), ROUTE, caller(provider, req("hi")))
        await cache.complete(req("hi"), ROUTE, caller(provider, req("hi")))
    assert backend.hit_miss_ratio["hits"] == 1 and backend.hit_miss_ratio["total"] == 2
