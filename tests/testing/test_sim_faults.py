"""Simulator faults as the official SDKs see them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from asyncllm.testing import Fault, Simulator

USER: Any = [{"role": "user", "content": "Tell me something."}]


async def test_rate_limit_fault_through_both_sdks(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    sim.inject(Fault.rate_limit(retry_after=1.5), times=2)
    with pytest.raises(openai.RateLimitError) as oe:
        await oai.chat.completions.create(model="m", messages=USER)
    assert oe.value.response.headers["retry-after"] == "2"
    assert oe.value.response.headers["retry-after-ms"] == "1500"
    assert oe.value.code == "rate_limit_exceeded"
    with pytest.raises(anthropic.RateLimitError) as ae:
        await ant.messages.create(model="c", max_tokens=5, messages=USER)
    assert ae.value.body["error"]["type"] == "rate_limit_error"
    assert ae.value.response.headers["retry-after-ms"] == "1500"
    assert sim.stats.rate_limited == 2 and sim.stats.faults == 2
    await oai.chat.completions.create(model="m", messages=USER)
    assert sim.stats.completed == 1


async def test_status_faults(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    sim.inject(Fault.server_error(500))
    sim.inject(Fault.unavailable())
    sim.inject(Fault.overloaded())
    sim.inject(Fault.server_error(502))
    with pytest.raises(openai.InternalServerError) as e1:
        await oai.chat.completions.create(model="m", messages=USER)
    assert e1.value.status_code == 500 and e1.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as e2:
        await oai.chat.completions.create(model="m", messages=USER)
    assert e2.value.status_code == 503
    with pytest.raises(anthropic.OverloadedError) as e3:
        await ant.messages.create(model="c", max_tokens=5, messages=USER)
    assert e3.value.status_code == 529
    assert e3.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.InternalServerError) as e4:
        await ant.messages.create(model="c", max_tokens=5, messages=USER)
    assert e4.value.status_code == 502 and e4.value.body["error"]["type"] == "api_error"
    assert sim.stats.errors == 4 and sim.pending_faults == 0


async def test_request_faults(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    sim.inject(Fault.bad_request("nope"))
    with pytest.raises(openai.BadRequestError, match="nope"):
        await oai.chat.completions.create(model="m", messages=USER)
    sim.inject(Fault.context_window(), times=2)
    with pytest.raises(openai.BadRequestError) as oe:
        await oai.chat.completions.create(model="m", messages=USER)
    assert oe.value.code == "context_length_exceeded"
    assert "maximum context length" in oe.value.message
    with pytest.raises(anthropic.BadRequestError) as ae:
        await ant.messages.create(model="c", max_tokens=5, messages=USER)
    assert ae.value.body["error"]["type"] == "invalid_request_error"
    assert "prompt is too long" in ae.value.body["error"]["message"]
    sim.inject(Fault.auth(), times=2)
    with pytest.raises(openai.AuthenticationError):
        await oai.chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.AuthenticationError):
        await ant.messages.create(model="c", max_tokens=5, messages=USER)


async def test_content_filter(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    sim.inject(Fault.content_filter(after=2), times=2)
    r = await oai.chat.completions.create(model="m", messages=USER)
    assert r.choices[0].finish_reason == "content_filter"
    assert len((r.choices[0].message.content or "").split(" ")) == 2
    async with ant.messages.stream(model="c", max_tokens=50, messages=USER) as st:
        texts = [t async for t in st.text_stream]
        final = await st.get_final_message()
    assert len(texts) == 2 and final.stop_reason == "refusal"


async def test_drop_mid_stream_breaks_the_sdk_iterators(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    sim.inject(Fault.drop_mid_stream(after=3), times=2)
    got: list[str] = []
    stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert len(got) == 3
    texts: list[str] = []
    # anthropic < 2.17 let httpx2's error through; 2.17+ wraps it in APIConnectionError.
    with pytest.raises(
        (httpx2.RemoteProtocolError, anthropic.APIConnectionError), match="incomplete chunked read"
    ):
        async with ant.messages.stream(model="c", max_tokens=50, messages=USER) as st:
            async for t in st.text_stream:
                texts.append(t)
    assert len(texts) == 3
    assert sim.stats.dropped == 2 and sim.stats.completed == 0
    assert sim.stats.disconnected == 0  # the server cut these, not the client


async def test_drop_on_a_json_request(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.inject(Fault.drop_mid_stream())
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(model="m", messages=USER)


async def test_malformed_chunk(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    sim.inject(Fault.malformed_chunk(after=2), times=3)
    got: list[str] = []
    stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
    with pytest.raises(json.JSONDecodeError):
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert len(got) == 2
    with pytest.raises(json.JSONDecodeError):
        async with ant.messages.stream(model="c", max_tokens=50, messages=USER) as st:
            async for _ in st.text_stream:
                pass
    with pytest.raises(json.JSONDecodeError):  # a non-streamed body that is not JSON
        await oai.chat.completions.create(model="m", messages=USER)


async def test_mid_stream_error_events(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    sim.inject(Fault.overloaded(after=2))
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as ae:
        async with ant.messages.stream(model="c", max_tokens=50, messages=USER) as st:
            async for t in st.text_stream:
                texts.append(t)
    assert len(texts) == 2
    assert ae.value.body["error"]["type"] == "overloaded_error"
    sim.inject(Fault.server_error(500, after=1))
    stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
    with pytest.raises(openai.APIError) as oe:
        async for _ in stream:
            pass
    assert oe.value.type == "server_error"
    assert sim.stats.errors == 2


@pytest.mark.looptime
async def test_stall_before_headers_and_mid_stream(sim: Simulator) -> None:
    loop = asyncio.get_running_loop()
    sim.inject(Fault.stall(50.0))
    async with openai.AsyncOpenAI(
        base_url=sim.openai_base_url, api_key="t", max_retries=0, timeout=2.0
    ) as oai:
        t0 = loop.time()
        with pytest.raises(openai.APITimeoutError):
            await oai.chat.completions.create(model="m", messages=USER)
        assert loop.time() - t0 == pytest.approx(2.0)
        await sim.wait_for(lambda st: st.disconnected == 1, timeout=2)
        sim.inject(Fault.stall(1.5, after=2))
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
        t0 = loop.time()
        stamps = []
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                stamps.append(loop.time() - t0)
    assert stamps == pytest.approx([0.0, 0.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5])


@pytest.mark.looptime
async def test_stall_on_json_requests_waits_once(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    loop = asyncio.get_running_loop()
    for fault in (Fault.stall(4.0), Fault.stall(4.0, after=1)):
        sim.inject(fault)
        t0 = loop.time()
        r = await oai.chat.completions.create(model="m", messages=USER)
        assert loop.time() - t0 == pytest.approx(4.0)
        assert r.choices[0].finish_reason == "stop"


async def test_faults_are_a_fifo_queue(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    sim.inject(Fault.bad_request("first"))
    sim.inject(Fault.server_error(500), times=2)
    assert sim.pending_faults == 3
    with pytest.raises(openai.BadRequestError, match="first"):
        await oai.chat.completions.create(model="m", messages=USER)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await oai.chat.completions.create(model="m", messages=USER)
    await oai.chat.completions.create(model="m", messages=USER)
    sim.inject(Fault.auth(), times=5)
    sim.clear_faults()
    assert sim.pending_faults == 0
    with pytest.raises(TypeError):
        sim.inject("rate_limit")
