"""Policy and modes: what is cached, bypass and refresh, TTLs, errors, statistics, logs."""

from __future__ import annotations

import anyio
import pytest
import structlog
from _cachetest import ROUTE, caller, req
from _structlog import structlog_as_found
from aiocache.base import BaseCache

from asyncllm import ConfigurationError, InvalidRequestError, Response, ServerError, Usage
from asyncllm.cache import CachePolicy, ResponseCache, ResponseSerializer
from asyncllm.testing import FakeProvider, FakeReply


async def _twice(cache: ResponseCache, provider: FakeProvider, **params: object) -> None:
    r = req(**params)
    await cache.complete(r, ROUTE, caller(provider, r))
    await cache.complete(r, ROUTE, caller(provider, r))


@pytest.mark.parametrize(
    ("params", "policy", "calls"),
    [
        ({"temperature": 0}, CachePolicy(), 1),
        ({"temperature": 0.0}, CachePolicy(), 1),
        ({"temperature": 0.7, "seed": 42}, CachePolicy(), 1),
        ({"temperature": 0.7}, CachePolicy(), 2),
        ({"temperature": None}, CachePolicy(), 2),
        ({"temperature": 0.7}, CachePolicy(cache_nondeterministic=True), 1),
    ],
)
async def test_only_deterministic_requests_are_cached_by_default(
    params: dict[str, object], policy: CachePolicy, calls: int
) -> None:
    provider = FakeProvider()
    async with ResponseCache(policy=policy) as cache:
        await _twice(cache, provider, **params)
        stats = cache.statistics()
    assert len(provider.calls) == calls
    assert stats["uncacheable"] == (2 if calls == 2 else 0)


@pytest.mark.looptime
async def test_nondeterministic_concurrent_requests_are_not_shared() -> None:
    provider = FakeProvider(latency=1.0)
    r = req(temperature=1.0)
    async with ResponseCache() as cache, anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(cache.complete, r, ROUTE, caller(provider, r))
    assert len(provider.calls) == 3


async def test_bypass_neither_reads_nor_writes() -> None:
    provider = FakeProvider(replies=["first", "second", "third"])
    r = req()
    async with ResponseCache() as cache:
        stored = await cache.complete(r, ROUTE, caller(provider, r))
        bypassed = await cache.complete(r, ROUTE, caller(provider, r), mode="bypass")
        again = await cache.complete(r, ROUTE, caller(provider, r))
        other = req("never stored")
        await cache.complete(other, ROUTE, caller(provider, other), mode="bypass")
        assert await cache.get(other, ROUTE) is None
        stats = cache.statistics()
    assert (stored.text, bypassed.text, again.text) == ("first", "second", "first")
    assert not bypassed.cached and again.cached
    assert stats["bypasses"] == 2 and stats["hits"] == 1


async def test_refresh_skips_the_read_and_overwrites_the_entry() -> None:
    provider = FakeProvider(replies=["old", "new"])
    r = req()
    async with ResponseCache() as cache:
        await cache.complete(r, ROUTE, caller(provider, r))
        refreshed = await cache.complete(r, ROUTE, caller(provider, r), mode="refresh")
        after = await cache.complete(r, ROUTE, caller(provider, r))
        stats = cache.statistics()
    assert refreshed.text == "new" and not refreshed.cached
    assert after.text == "new" and after.cached
    assert len(provider.calls) == 2 and stats["refreshes"] == 1


@pytest.mark.parametrize(
    ("reply", "stored"),
    [
        (FakeReply(tokens=("done",), finish_reason="stop"), True),
        (FakeReply(tokens=("trunc",), finish_reason="length"), True),
        (FakeReply(tokens=(), finish_reason="tool_calls"), True),
        (FakeReply(tokens=("no",), finish_reason="content_filter"), False),
        (FakeReply(tokens=("?",), finish_reason="other"), False),
    ],
)
async def test_what_is_stored_depends_on_the_finish_reason(reply: FakeReply, stored: bool) -> None:
    provider = FakeProvider(replies=[reply])
    async with ResponseCache() as cache:
        await _twice(cache, provider)
    assert len(provider.calls) == (1 if stored else 2)


async def test_a_response_without_finish_reason_is_never_stored() -> None:
    r = req()
    calls = 0

    async def incomplete() -> Response:
        nonlocal calls
        calls += 1
        return Response(text="part", finish_reason=None, usage=Usage(), provider="p", model="m")

    everything = CachePolicy(store_finish_reasons=frozenset({"stop", "other", "None", ""}))
    async with ResponseCache(policy=everything) as c:
        await c.complete(r, ROUTE, incomplete)
        await c.complete(r, ROUTE, incomplete)
        stats = c.statistics()
    assert calls == 2 and stats["stored"] == 0 and stats["corrupt"] == 0


async def test_errors_are_not_cached() -> None:
    provider = FakeProvider(replies=[ServerError("down", status_code=503), "up"])
    r = req()
    async with ResponseCache() as cache:
        with pytest.raises(ServerError):
            await cache.complete(r, ROUTE, caller(provider, r))
        ok = await cache.complete(r, ROUTE, caller(provider, r))
        hit = await cache.complete(r, ROUTE, caller(provider, r))
        stats = cache.statistics()
    assert ok.text == "up" and hit.cached and len(provider.calls) == 2
    assert stats["errors"] == 1 and stats["stored"] == 1


@pytest.mark.looptime
async def test_cache_ttl_expires_entries_on_the_loop_clock() -> None:
    provider = FakeProvider(replies=["a", "b", "c"])
    r = req()
    async with ResponseCache(ttl=10) as cache:
        await cache.complete(r, ROUTE, caller(provider, r))
        await anyio.sleep(9.9)
        assert (await cache.complete(r, ROUTE, caller(provider, r))).text == "a"
        await anyio.sleep(0.2)
        assert (await cache.complete(r, ROUTE, caller(provider, r))).text == "b"
    assert len(provider.calls) == 2


@pytest.mark.looptime
async def test_per_request_ttl_overrides_the_cache_ttl() -> None:
    provider = FakeProvider(replies=["a", "b", "c", "d"])
    short, long = req("short"), req("long")
    async with ResponseCache(ttl=100) as cache:
        await cache.complete(short, ROUTE, caller(provider, short), ttl=1)
        await cache.complete(long, ROUTE, caller(provider, long))
        await anyio.sleep(2)
        assert await cache.get(short, ROUTE) is None
        assert await cache.get(long, ROUTE) is not None


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "10", True])
async def test_bad_ttl_is_a_typed_error(bad: object) -> None:
    provider = FakeProvider()
    r = req()
    async with ResponseCache() as cache:
        with pytest.raises(InvalidRequestError, match="ttl"):
            await cache.complete(r, ROUTE, caller(provider, r), ttl=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="ttl"):
        ResponseCache(ttl=bad)  # type: ignore[arg-type]
    assert provider.calls == []


async def test_bad_mode_is_a_typed_error() -> None:
    provider = FakeProvider()
    r = req()
    async with ResponseCache() as cache:
        with pytest.raises(InvalidRequestError, match="mode"):
            await cache.complete(r, ROUTE, caller(provider, r), mode="sometimes")  # type: ignore[arg-type]
    assert provider.calls == []


async def test_invalidate_and_clear() -> None:
    provider = FakeProvider()
    a, b = req("a"), req("b")
    async with ResponseCache() as cache:
        await cache.complete(a, ROUTE, caller(provider, a))
        await cache.complete(b, ROUTE, caller(provider, b))
        assert cache.statistics()["entries"] == 2
        assert await cache.invalidate(a, ROUTE) is True
        assert await cache.invalidate(a, ROUTE) is False
        assert await cache.get(a, ROUTE) is None and await cache.get(b, ROUTE) is not None
        await cache.clear()
        assert cache.statistics()["entries"] == 0


async def test_clear_leaves_other_namespaces_alone() -> None:
    from asyncllm.cache import MemoryBackend

    provider = FakeProvider()
    r = req()
    shared = MemoryBackend()
    await shared.set("somebody-else", "value")
    async with (
        ResponseCache(shared, namespace="a") as a,
        ResponseCache(shared, namespace="ab") as b,
    ):
        await a.complete(r, ROUTE, caller(provider, r))
        await b.complete(r, ROUTE, caller(provider, r))
        await a.clear()
        assert await a.get(r, ROUTE) is None and await b.get(r, ROUTE) is not None
    assert await shared.get("somebody-else") == "value"


async def test_namespaces_do_not_share_entries() -> None:
    from asyncllm.cache import MemoryBackend

    provider = FakeProvider()
    r = req()
    shared = MemoryBackend()
    async with ResponseCache(shared, namespace="a") as a, ResponseCache(shared, namespace="b") as b:
        await a.complete(r, ROUTE, caller(provider, r))
        await b.complete(r, ROUTE, caller(provider, r))
        assert (await a.complete(r, ROUTE, caller(provider, r))).cached
    assert len(provider.calls) == 2 and len(shared) == 2


async def test_statistics_and_hit_rate() -> None:
    provider = FakeProvider()
    r = req()
    async with ResponseCache() as cache:
        for _ in range(4):
            await cache.complete(r, ROUTE, caller(provider, r))
        await cache.complete(r, ROUTE, caller(provider, r), mode="bypass")
        stats = cache.statistics()
    assert stats["hits"] == 3 and stats["misses"] == 1 and stats["hit_rate"] == 0.75
    assert stats["bypasses"] == 1 and stats["entries"] == 1 and stats["backend"] == "MemoryBackend"


async def test_events_carry_a_key_prefix_never_the_prompt_or_a_secret() -> None:
    provider = FakeProvider()
    secret = "sk-abcdefghijklmnopqrstuvwx"
    r = req("my very private prompt", provider_options={"api_key": secret})
    async with ResponseCache() as cache:
        with structlog_as_found(), structlog.testing.capture_logs() as logs:
            await cache.complete(r, ROUTE, caller(provider, r))
            await cache.complete(r, ROUTE, caller(provider, r))
        key = cache.key_for(r, ROUTE)
    events = [e["event"] for e in logs]
    assert events == ["cache_miss", "cache_store", "cache_hit"]
    assert all(e["log_level"] == "debug" for e in logs)
    assert all(e["key"] == key[-64:][:12] for e in logs)
    text = repr(logs)
    assert "private" not in text and secret not in text and key[-64:] not in text


class _Hanging(BaseCache):  # type: ignore[misc]
    """A network backend that never answers."""

    NAME = "hanging"

    def __init__(self) -> None:
        super().__init__(serializer=ResponseSerializer(), timeout=None)

    async def _get(self, key: str, encoding: object = "utf-8", _conn: object = None) -> None:
        await anyio.sleep(3600)

    async def _set(self, key: str, value: object, ttl: object = None, **kw: object) -> None:
        await anyio.sleep(3600)


@pytest.mark.looptime
async def test_a_backend_that_hangs_costs_at_most_op_timeout() -> None:
    provider = FakeProvider()
    r = req()
    async with ResponseCache(_Hanging(), op_timeout=0.5) as cache:
        with anyio.fail_after(0.6):  # the read gives up after 0.5 s (loop time)
            response = await cache.complete(r, ROUTE, caller(provider, r))
        assert not response.cached and response.text == "Hello, world!"
        stats = cache.statistics()
        assert stats["backend_errors"] == 1  # the read
        assert stats["backend_bypassed"] == 1  # the write: the breaker is open
        await anyio.sleep(0.5)
        assert cache.statistics()["in_flight"] == 0


def test_op_timeout_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="op_timeout"):
        ResponseCache(op_timeout=0)


async def test_silent_until_structlog_is_configured(capsys: pytest.CaptureFixture[str]) -> None:
    assert not structlog.is_configured()
    provider = FakeProvider()
    r = req()
    async with ResponseCache() as cache:
        await cache.complete(r, ROUTE, caller(provider, r))
        await cache.complete(r, ROUTE, caller(provider, r))
    assert capsys.readouterr().out == ""
