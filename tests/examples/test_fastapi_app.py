"""examples/fastapi_app.py under uvicorn on loopback, driven by a real HTTP client (aiohttp).

Pins: concurrent streams complete; a client leaving mid-stream cancels its upstream
request (the simulator sees the disconnect); an error after the first token ends the SSE
stream with an error event; errors before it map to HTTP statuses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
import uvicorn
from fastapi_app import create_app

from asyncllm import Client, MemoryBudget, ModelPrice, Prices, RetryPolicy, SpendLimit
from asyncllm.providers import OpenAICompatibleProvider
from asyncllm.testing import Fault, Simulator


def _client_for(sim: Simulator, **kwargs: Any) -> Any:
    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Client]:
        provider = OpenAICompatibleProvider(
            name="sim", base_url=sim.openai_base_url, model="sim", api_key="k"
        )
        async with Client(provider, log=False, **kwargs) as client:
            yield client

    return make


@contextlib.asynccontextmanager
async def serve(sim: Simulator, **kwargs: Any) -> AsyncIterator[str]:
    """The app on a free loopback port, for as long as the block runs."""
    app = create_app(_client_for(sim, **kwargs))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, no event
                await anyio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


async def _events(resp: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    out = []
    event = None
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event or "message", json.loads(line[6:])))
    return out


async def test_concurrent_streams_and_plain_requests_complete() -> None:
    async with Simulator(output_tokens=6, token_delay=0.005) as sim, serve(sim) as url:
        results: list[list[tuple[str, dict[str, Any]]]] = []
        async with aiohttp.ClientSession() as http:

            async def one(i: int) -> None:
                async with http.post(f"{url}/chat/stream", json={"prompt": f"p{i}"}) as r:
                    assert r.status == 200
                    assert r.headers["content-type"].startswith("text/event-stream")
                    results.append(await _events(r))

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
            async with http.post(f"{url}/chat", json={"prompt": "p0"}) as r:
                assert r.status == 200
                plain = await r.json()
        assert len(results) == 8
        for events in results:
            kinds = [k for k, _ in events]
            assert kinds == ["token"] * 6 + ["done"]
            assert events[-1][1]["finish_reason"] == "stop"
        assert plain["usage"]["output"] == 6 and plain["provider"] == "sim"
        assert sim.stats.completed == 9 and sim.stats.disconnected == 0


async def test_disconnect_mid_stream_cancels_the_upstream_request() -> None:
    async with Simulator(output_tokens=400, token_delay=0.02) as sim, serve(sim) as url:
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{url}/chat/stream", json={"prompt": "long"})
            assert r.status == 200
            first = await r.content.readline()
            assert first.startswith(b"event: token")
            r.close()  # the browser goes away mid-stream
        stats = await sim.wait_for(lambda st: st.disconnected == 1 and st.in_flight == 0, 5)
        assert stats.completed == 0


async def test_disconnect_before_the_first_token_cancels_too() -> None:
    async with Simulator(latency=30) as sim, serve(sim) as url:
        async with aiohttp.ClientSession() as http:
            with anyio.move_on_after(0.3):  # the browser gives up while the model thinks
                await http.post(f"{url}/chat/stream", json={"prompt": "slow"})
        stats = await sim.wait_for(lambda st: st.disconnected == 1 and st.in_flight == 0, 5)
        assert stats.completed == 0


async def test_error_after_first_token_ends_the_stream_with_an_error_event() -> None:
    async with (
        Simulator(output_tokens=8) as sim,
        serve(sim, retry=RetryPolicy(max_retries=0)) as url,
    ):
        sim.inject(Fault.server_error(after=3))
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/chat/stream", json={"prompt": "x"}) as r,
        ):
            assert r.status == 200
            events = await _events(r)
    kinds = [k for k, _ in events]
    assert kinds == ["token"] * 3 + ["error"]
    assert events[-1][1]["error"] == "StreamBroken"


@pytest.mark.parametrize("path", ["/chat", "/chat/stream"])
async def test_errors_before_the_first_token_map_to_statuses(path: str) -> None:
    once = RetryPolicy(max_retries=0)
    async with Simulator(output_tokens=4) as sim:
        async with serve(sim, retry=once) as url, aiohttp.ClientSession() as http:
            sim.inject(Fault.rate_limit(retry_after=3))
            async with http.post(url + path, json={"prompt": "x"}) as r:
                assert r.status == 429 and r.headers["retry-after"] == "3"
                assert (await r.json())["error"] in ("RateLimited", "AllProvidersFailed")
            sim.inject(Fault.server_error(503))
            async with http.post(url + path, json={"prompt": "x"}) as r:
                assert r.status == 502
            async with http.post(url + path, json={"prompt": ""}) as r:
                assert r.status == 422
        price = Prices({("sim", "sim"): ModelPrice(input_per_mtok=1.0, output_per_mtok=1.0)})
        budget = MemoryBudget(SpendLimit(0.0), pricing=price)
        async with serve(sim, budget=budget) as url, aiohttp.ClientSession() as http:
            received = sim.stats.received
            async with http.post(url + path, json={"prompt": "x"}) as r:
                assert r.status == 402
                assert "budget" in (await r.json())["message"]
            assert sim.stats.received == received  # refused before any call
