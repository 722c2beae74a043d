"""``ConnectionFailed.response_started``: whether a lost connection may have been billed.

The orchestrator settles a failed attempt's limiter tokens and budget reservation as
"nothing used" only when the provider surely generated nothing; a connection that broke
after the provider answered 200 must not look like a failed connect.
"""

from __future__ import annotations

import pytest

from asyncllm import ConnectionFailed
from asyncllm._build import build_request
from asyncllm.providers import HttpResources
from asyncllm.providers._openai import OpenAIProvider
from asyncllm.testing import Fault, Simulator


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_drop_after_the_headers_is_marked_started(backend: str) -> None:
    async with Simulator(output_tokens=4) as sim:
        http = HttpResources()
        p = OpenAIProvider(base_url=sim.openai_base_url, api_key="k", model="m", backend=backend)
        await p.open(http)
        try:
            sim.inject(Fault.drop_mid_stream(after=0))
            with pytest.raises(ConnectionFailed) as info:
                async with p.stream(build_request("hi", {})) as s:
                    async for _ in s:
                        pass
            assert info.value.response_started
        finally:
            await http.aclose()


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_refused_connection_is_not_marked_started(backend: str) -> None:
    async with Simulator() as sim:
        url = sim.openai_base_url
    http = HttpResources()  # the simulator is gone: nothing listens on its port any more
    p = OpenAIProvider(base_url=url, api_key="k", model="m", backend=backend)
    await p.open(http)
    try:
        with pytest.raises(ConnectionFailed) as info:
            await p.complete(build_request("hi", {}))
        assert not info.value.response_started
    finally:
        await http.aclose()
