"""End to end through ``Client(cache=ResponseCache(...))``."""

from __future__ import annotations

import anyio
import pytest

from asyncllm import Client, Response
from asyncllm.cache import ResponseCache
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider
from asyncllm.testing import FakeProvider, FakeReply, Simulator


async def test_the_client_serves_repeats_from_the_cache() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=("Four", "."))])
    cache = ResponseCache()
    async with Client([provider], cache=cache, log=False) as client:
        first = await client.complete("What is 2+2?", temperature=0)
        again = await client.complete("What is 2+2?  ", temperature=0.0)
        bypass = await client.complete("What is 2+2?", temperature=0, cache="bypass")
        async with client.stream("What is 2+2?", temperature=0) as s:
            chunks = [c.text async for c in s]
        stats = client.statistics()["cache"]
    assert not first.cached and again.cached and not bypass.cached
    assert again.text == first.text == "Four."
    assert chunks == ["Four", ".", ""] and s.response is not None and s.response.cached
    assert len(provider.calls) == 2  # the first call and the bypass
    assert stats["hits"] == 2 and stats["bypasses"] == 1


async def test_a_streamed_answer_is_stored_through_the_client() -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=("a", "b", "c"))])
    async with Client([provider], cache=ResponseCache(), log=False) as client:
        async with client.stream("Spell it", temperature=0) as s:
            first = [c.text async for c in s]
        hit = await client.complete("Spell it", temperature=0)
    assert first[:3] == ["a", "b", "c"] and hit.cached and hit.chunks == ("a", "b", "c")
    assert len(provider.calls) == 1


@pytest.mark.looptime
async def test_concurrent_identical_client_calls_make_one_provider_call() -> None:
    provider = FakeProvider(latency=1.0)
    results: list[Response] = []
    async with Client([provider], cache=ResponseCache(), log=False) as client:

        async def one() -> None:
            results.append(await client.complete("Same question", temperature=0))

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(one)
    assert len(provider.calls) == 1 and len(results) == 200


async def test_a_thousand_client_calls_reach_the_simulator_once() -> None:
    async with Simulator(latency=0.3, output_tokens=8) as sim:
        provider = OpenAICompatibleProvider(base_url=sim.openai_base_url, model="sim-model")
        results: list[Response] = []
        async with Client([provider], cache=ResponseCache(), log=False) as client:

            async def one() -> None:
                results.append(await client.complete("Tell me a joke", temperature=0))

            async with anyio.create_task_group() as tg:
                for _ in range(1000):
                    tg.start_soon(one)
        assert sim.stats.received == 1
    assert len(results) == 1000 and len({r.text for r in results}) == 1
