"""End to end over HTTP: 1,000 identical concurrent requests reach the simulator once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from asyncllm import ChatRequest, Response
from asyncllm._build import build_request
from asyncllm.cache import ResponseCache
from asyncllm.providers import HttpResources
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider
from asyncllm.testing import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # The latency keeps the one upstream call in flight while every caller arrives.
    async with Simulator(latency=0.3, output_tokens=8) as s:
        yield s


async def _ask_many(sim: Simulator, request: ChatRequest, n: int, *, cancel_first: bool) -> None:
    provider = OpenAICompatibleProvider(base_url=sim.openai_base_url, model="sim-model")
    route = ((provider.name, provider.kind, "sim-model"),)
    http = HttpResources()
    await provider.open(http)
    results: list[Response] = []
    first_cancelled = False

    async def call() -> Response:
        return await provider.complete(request)

    async def first() -> None:
        nonlocal first_cancelled
        with anyio.move_on_after(0.05) as scope:
            results.append(await cache.complete(request, route, call))
        first_cancelled = scope.cancelled_caught

    async def other() -> None:
        results.append(await cache.complete(request, route, call))

    try:
        async with ResponseCache() as cache:
            async with anyio.create_task_group() as tg:
                tg.start_soon(first if cancel_first else other)
                await anyio.sleep(0.01)  # the first caller starts the call
                for _ in range(n - 1):
                    tg.start_soon(other)
            stats = cache.statistics()
            hit = await cache.complete(request, route, call)
    finally:
        await provider.aclose()
        await http.aclose()

    expected = n - 1 if cancel_first else n
    assert first_cancelled is cancel_first
    assert len(results) == expected
    assert len({r.text for r in results}) == 1 and results[0].text
    assert all(r.finish_reason == "stop" for r in results)
    assert stats["misses"] == 1 and stats["deduplicated"] == n - 1
    assert hit.cached and hit.text == results[0].text
    assert sim.stats.received == 1 and sim.stats.completed == 1


async def test_a_thousand_concurrent_identical_requests_reach_the_server_once(
    sim: Simulator,
) -> None:
    request = build_request("Tell me a joke", {"temperature": 0})
    await _ask_many(sim, request, 1000, cancel_first=False)


async def test_cancelling_the_first_caller_still_answers_the_rest(sim: Simulator) -> None:
    request = build_request("Tell me a fact", {"temperature": 0})
    await _ask_many(sim, request, 1000, cancel_first=True)
    assert sim.stats.disconnected == 0  # the upstream call was not abandoned
