"""The Redis backend against a real redis-server: JSON entries, TTLs, hostile entries, and two
processes sharing one cache."""

from __future__ import annotations

import pickle
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from _cachetest import ROUTE, TRIGGERED, Exploit, caller, opener, req, wait_until
from _redis import free_port, redis_server_binary

from asyncllm import ConfigurationError
from asyncllm.cache import ResponseCache
from asyncllm.cache._redis import RedisBackend
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.redis


@pytest.fixture
def ns() -> str:
    """A namespace of its own for each test (they share one server)."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_entries_are_validated_json_with_a_ttl(
    redis_url: str, ns: str, raw: aioredis.Redis
) -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=("4", "."))])
    secret = "sk-secretsecretsecret1234"
    r = req("private prompt text", provider_options={"api_key": secret})
    async with ResponseCache.redis(redis_url, namespace=ns, ttl=30) as cache:
        first = await cache.complete(r, ROUTE, caller(provider, r))
        hit = await cache.complete(r, ROUTE, caller(provider, r))
        key = cache.key_for(r, ROUTE)
        stats = cache.statistics()
    assert not first.cached and hit.cached and hit.text == "4." and hit.chunks == ("4", ".")
    assert len(provider.calls) == 1 and stats["entries"] is None
    stored = await raw.get(key)
    assert stored is not None and stored.startswith(b'{"format":"asyncllm.response"')
    assert b"private" not in stored and secret.encode() not in stored
    assert 29_000 < await raw.pttl(key) <= 30_000
    assert key.startswith(f"asyncllm:v1:{ns}:")


async def test_a_hostile_entry_is_a_miss_and_never_runs(
    redis_url: str, ns: str, raw: aioredis.Redis
) -> None:
    provider = FakeProvider()
    r = req()
    async with ResponseCache.redis(redis_url, namespace=ns) as cache:
        key = cache.key_for(r, ROUTE)
        await raw.set(key, pickle.dumps(Exploit()))
        response = await cache.complete(r, ROUTE, caller(provider, r))
        stats = cache.statistics()
        # The bad entry was replaced by a good one.
        again = await cache.complete(r, ROUTE, caller(provider, r))
    assert TRIGGERED == []
    assert not response.cached and again.cached and len(provider.calls) == 1
    assert stats["corrupt"] == 1
    assert (await raw.get(key) or b"").startswith(b"{")


async def test_streams_are_stored_and_replayed_through_redis(redis_url: str, ns: str) -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=("a", "b", "c"))])
    r = req()
    async with ResponseCache.redis(redis_url, namespace=ns) as cache:
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            first = [c async for c in s]
        async with cache.stream(r, ROUTE, opener(provider, r)) as s:
            replay = [c async for c in s]
    assert replay == first and len(provider.calls) == 1


async def test_an_unreachable_redis_degrades_to_no_cache(ns: str) -> None:
    provider = FakeProvider()
    r = req()
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with ResponseCache.redis(url, namespace=ns, timeout=0.5) as cache:
        answers = []
        for _ in range(2):
            answers.append(await cache.complete(r, ROUTE, caller(provider, r)))
            # The failed write finishes in the background.
            await wait_until(lambda: not cache.statistics()["in_flight"])
        stats = cache.statistics()
    assert [a.text for a in answers] == ["Hello, world!"] * 2 and len(provider.calls) == 2
    # The first get fails and trips the breaker: the rest skip Redis (misses, none fatal).
    assert stats["backend_errors"] == 1 and stats["backend_bypassed"] == 3


def test_two_processes_share_entries(redis_url: str, ns: str) -> None:
    redis_server_binary()  # skip (or fail under CI) when missing
    worker = Path(__file__).with_name("_redis_worker.py")

    def run() -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, str(worker), redis_url, ns],
            capture_output=True,
            timeout=30,
            check=True,
        )
        result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
        return result

    first, second = run(), run()
    assert first["cached"] is False and first["provider_calls"] == 1
    assert second["cached"] is True and second["provider_calls"] == 0
    assert second["text"] == first["text"] == "shared across processes"
    assert second["chunks"] == ["shared", " across", " processes"]


def test_the_redis_backend_refuses_pickle_and_hides_credentials() -> None:
    from aiocache.serializers import PickleSerializer

    with pytest.raises(ConfigurationError, match="JSON only"):
        RedisBackend(serializer=PickleSerializer())
    with pytest.raises(ConfigurationError, match="url or client"):
        RedisBackend("redis://localhost", client=aioredis.Redis())
    backend = RedisBackend("redis://:hunter2pass@127.0.0.1:6390/3")
    assert "hunter2" not in repr(backend) and "6390" in repr(backend)
    assert "hunter2" not in repr(ResponseCache(backend))


async def test_a_given_client_is_used_and_not_closed(redis_url: str, ns: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    provider = FakeProvider()
    r = req()
    try:
        async with ResponseCache.redis(client=client, namespace=ns) as cache:
            await cache.complete(r, ROUTE, caller(provider, r))
        assert await client.exists(cache.key_for(r, ROUTE)) == 1  # still usable
    finally:
        await client.aclose()


async def test_clear_deletes_only_this_namespace(
    redis_url: str, ns: str, raw: aioredis.Redis
) -> None:
    provider = FakeProvider()
    r = req()
    await raw.set(f"{ns}-unrelated", b"keep me")
    async with (
        ResponseCache.redis(redis_url, namespace=ns) as mine,
        ResponseCache.redis(redis_url, namespace=ns + "x") as theirs,
    ):
        await mine.complete(r, ROUTE, caller(provider, r))
        await theirs.complete(r, ROUTE, caller(provider, r))
        await mine.clear()
        assert await mine.get(r, ROUTE) is None
        assert await theirs.get(r, ROUTE) is not None
    assert await raw.get(f"{ns}-unrelated") == b"keep me"
