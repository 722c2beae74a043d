"""A Redis response cache that freezes or dies costs requests nothing: it is bypassed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from _redis_ctl import RedisProc, controlled_redis
from structlog.testing import capture_logs

from asyncllm import Client
from asyncllm.cache import ResponseCache
from asyncllm.testing import FakeProvider

pytestmark = pytest.mark.redis


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProc]:
    with controlled_redis(tmp_path) as r:
        yield r


async def wait_for_hit(client: Client, prompt: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not (await client.complete(prompt, temperature=0)).cached:
        assert time.monotonic() < deadline, "the cache never came back"
        await anyio.sleep(0.1)


@pytest.mark.parametrize("fault", ["freeze", "kill"])
async def test_a_failed_cache_is_bypassed_until_it_recovers(redis: RedisProc, fault: str) -> None:
    cache = ResponseCache.redis(redis.url, namespace=f"faults-{fault}", timeout=0.2)
    provider = FakeProvider()
    with capture_logs() as logs:
        async with Client(provider, cache=cache, log=False) as client:
            await client.complete("warm", temperature=0)
            assert (await client.complete("warm", temperature=0)).cached
            redis.freeze() if fault == "freeze" else redis.kill()
            t0 = time.monotonic()
            for i in range(100):
                r = await client.complete(f"q{i}", temperature=0)
                assert not r.cached
            elapsed = time.monotonic() - t0
            stats = cache.statistics()
            redis.thaw() if fault == "freeze" else redis.start()
            # Once the cool-down has passed a probe finds Redis and entries are served
            # again (after a restart without persistence the entry must be stored anew).
            await wait_for_hit(client, "warm", within=5.0)
    # 100 requests cost one op_timeout, not 100 of them (20 s before the breaker).
    assert elapsed < 2.0, elapsed
    assert stats["backend_bypassed"] >= 150 and stats["backend_errors"] <= 5
    assert stats["backend_outage"]["trips"] >= 1
    assert "cache_backend_bypassed" in [e["event"] for e in logs]
