"""Closing a client does not lose the answers it just delivered to the cache.

A shared call's answer reaches its callers first and is written to the backend after (so
callers never wait for the write). A client closed right after its last answer must still
let those writes finish; only calls still running are cancelled.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from asyncllm import Client
from asyncllm.cache import MemoryBackend, ResponseCache
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime


class SlowWrites(MemoryBackend):  # type: ignore[misc]
    """A memory backend whose writes take 50 ms, like a network store's would."""

    async def _set(self, *args: Any, **kwargs: Any) -> Any:
        await anyio.sleep(0.05)
        return await super()._set(*args, **kwargs)


async def test_writes_of_delivered_answers_finish_when_the_client_closes() -> None:
    backend = SlowWrites()
    cache = ResponseCache(backend)
    provider = FakeProvider("a", replies=[FakeReply(latency=0.1)])
    client = Client(provider, cache=cache, log=False)
    prompts = [f"q{i}" for i in range(5)]
    async with client, client.map(prompts, concurrency=5, temperature=0) as out:
        results = [r async for r in out]
        # The client closes now, while the five writes are still on their way.
    assert len(results) == 5 and all(r.ok for r in results)
    assert cache.statistics()["stored"] == 5 and len(backend) == 5


async def test_calls_still_running_are_cancelled_when_the_client_closes() -> None:
    cache = ResponseCache(SlowWrites())
    provider = FakeProvider("a", replies=[FakeReply(latency=10.0)])
    with anyio.move_on_after(1.0):
        async with Client(provider, cache=cache, log=False) as client:
            await client.complete("never answered", temperature=0)
    assert provider.cancelled == 1 and provider.open_streams == 0
    assert cache.statistics()["stored"] == 0 and cache.statistics()["in_flight"] == 0
