"""Simulator wire formats through the official OpenAI and Anthropic SDKs, and the CLI."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from asyncllm.testing import Simulator

USER: Any = [{"role": "user", "content": "Tell me something."}]
TOOL_OAI: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}
TOOL_ANT: Any = {
    "name": "get_weather",
    "description": "Weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    },
}


def input_tokens(chars: int, messages: int) -> int:
    return math.ceil(chars / 4) + 3 * messages


async def test_openai_plain_text_usage_and_determinism(oai: openai.AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(model="gpt-test", messages=USER)
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == "gpt-test"
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    words = (choice.message.content or "").split(" ")
    assert len(words) == 8 and all(words)
    assert r.usage is not None
    assert r.usage.prompt_tokens == input_tokens(len(USER[0]["content"]), 1)
    assert r.usage.completion_tokens == 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + 8
    again = await oai.chat.completions.create(model="gpt-test", messages=USER)
    seeded = await oai.chat.completions.create(model="gpt-test", messages=USER, seed=5)
    assert again.choices[0].message.content == choice.message.content
    assert seeded.choices[0].message.content != choice.message.content


async def test_openai_stream_one_word_per_chunk_with_usage(oai: openai.AsyncOpenAI) -> None:
    plain = await oai.chat.completions.create(model="m", messages=USER)
    stream = await oai.chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finishes, usage = [], [], None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk" and chunk.model == "m"
        if chunk.choices:
            c = chunk.choices[0]
            if c.delta.content:
                deltas.append(c.delta.content)
            if c.finish_reason:
                finishes.append(c.finish_reason)
        else:
            usage = chunk.usage
    assert len(deltas) == 8 and "".join(deltas) == plain.choices[0].message.content
    assert finishes == ["stop"]
    assert usage is not None and usage.completion_tokens == 8
    assert usage.prompt_tokens == plain.usage.prompt_tokens


async def test_openai_stream_without_include_usage_has_no_usage_chunk(sim: Simulator) -> None:
    body = {"model": "m", "messages": USER, "stream": True}
    async with aiohttp.ClientSession() as s, s.post(sim.openai_url, json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = (await r.read()).decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("usage" not in c and len(c["choices"]) == 1 for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_openai_system_and_developer_messages_count(oai: openai.AsyncOpenAI) -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Really."},
        *USER,
    ]
    r = await oai.chat.completions.create(model="m", messages=msgs)
    plain = await oai.chat.completions.create(model="m", messages=USER)
    chars = len("Be brief.") + len("Really.") + len(USER[0]["content"])
    assert r.usage is not None and r.usage.prompt_tokens == input_tokens(chars, 3)
    assert r.choices[0].message.content != plain.choices[0].message.content


async def test_openai_max_tokens_gives_length(oai: openai.AsyncOpenAI) -> None:
    for kw in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        r = await oai.chat.completions.create(model="m", messages=USER, **kw)
        assert r.choices[0].finish_reason == "length"
        assert len(r.choices[0].message.content.split(" ")) == 3
        assert r.usage.completion_tokens == 3


async def test_openai_stop_sequence(oai: openai.AsyncOpenAI) -> None:
    full = (await oai.chat.completions.create(model="m", messages=USER)).choices[0]
    words = (full.message.content or "").split(" ")
    stop = " " + words[3]
    r = await oai.chat.completions.create(model="m", messages=USER, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == " ".join(words[:3])


async def test_openai_tool_call_plain_and_streamed(oai: openai.AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(model="m", messages=USER, tools=[TOOL_OAI])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = (choice.message.tool_calls or [])[0]
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and isinstance(args["days"], int)

    stream = await oai.chat.completions.create(
        model="m",
        messages=USER,
        tools=[TOOL_OAI],
        stream=True,
    )
    fragments, ids, finish = [], [], None
    async for chunk in stream:
        c = chunk.choices[0]
        for tc in c.delta.tool_calls or []:
            assert tc.index == 0
            if tc.id:
                ids.append(tc.id)
            if tc.function and tc.function.arguments:
                fragments.append(tc.function.arguments)
        finish = c.finish_reason or finish
    assert ids == [ids[0]] and finish == "tool_calls"
    assert len(fragments) > 1 and json.loads("".join(fragments)) == args
    none = await oai.chat.completions.create(
        model="m",
        messages=USER,
        tools=[TOOL_OAI],
        tool_choice="none",
    )
    assert none.choices[0].finish_reason == "stop" and none.choices[0].message.content


async def test_openai_json_modes(oai: openai.AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(
        model="m",
        messages=USER,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(r.choices[0].message.content or ""), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "ok": {"type": "boolean"}},
    }
    r = await oai.chat.completions.create(
        model="m",
        messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    obj = json.loads(r.choices[0].message.content or "")
    assert set(obj) == {"name", "ok"} and isinstance(obj["ok"], bool)


async def test_anthropic_plain_and_system(ant: anthropic.AsyncAnthropic) -> None:
    m = await ant.messages.create(model="claude-test", max_tokens=100, messages=USER)
    assert m.type == "message" and m.role == "assistant" and m.model == "claude-test"
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert m.content[0].type == "text" and len(m.content[0].text.split(" ")) == 8
    assert m.usage.input_tokens == input_tokens(len(USER[0]["content"]), 1)
    assert m.usage.output_tokens == 8
    s = await ant.messages.create(
        model="claude-test",
        max_tokens=100,
        messages=USER,
        system=[{"type": "text", "text": "Be brief."}],
    )
    # The system field is text but not a message: its characters count, with no +3.
    chars = len("Be brief.") + len(USER[0]["content"])
    assert s.usage.input_tokens == input_tokens(chars, 1)
    assert s.content[0].text != m.content[0].text


async def test_anthropic_stream_events_and_final_message(ant: anthropic.AsyncAnthropic) -> None:
    async with ant.messages.stream(model="c", max_tokens=5, messages=USER) as st:
        texts = [t async for t in st.text_stream]
        final = await st.get_final_message()
    assert len(texts) == 5 and final.content[0].text == "".join(texts)
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 5


async def test_anthropic_raw_event_sequence(sim: Simulator) -> None:
    body = {"model": "c", "max_tokens": 50, "messages": USER, "stream": True}
    async with aiohttp.ClientSession() as s, s.post(sim.anthropic_url, json=body) as r:
        raw = (await r.read()).decode()
    names = [e.split("\n")[0].removeprefix("event: ") for e in raw.split("\n\n") if e]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 8,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_anthropic_stop_sequence(ant: anthropic.AsyncAnthropic) -> None:
    full = await ant.messages.create(model="c", max_tokens=100, messages=USER)
    words = full.content[0].text.split(" ")
    stop = " " + words[2]
    m = await ant.messages.create(model="c", max_tokens=100, messages=USER, stop_sequences=[stop])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
    assert m.content[0].text == " ".join(words[:2])
    assert m.usage.output_tokens == 2


async def test_anthropic_tool_use_plain_and_streamed(ant: anthropic.AsyncAnthropic) -> None:
    m = await ant.messages.create(model="c", max_tokens=100, messages=USER, tools=[TOOL_ANT])
    block = m.content[0]
    assert m.stop_reason == "tool_use" and block.type == "tool_use"
    assert block.name == "get_weather" and set(block.input) == {"city", "days"}
    async with ant.messages.stream(
        model="c",
        max_tokens=100,
        messages=USER,
        tools=[TOOL_ANT],
    ) as st:
        partial = [e.delta.partial_json async for e in st if e.type == "content_block_delta"]
        final = await st.get_final_message()
    assert len(partial) > 1
    assert final.stop_reason == "tool_use" and final.content[0].input == block.input


async def test_statistics_and_repr(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    await oai.chat.completions.create(model="m", messages=USER)
    d: dict[str, Any] = sim.statistics()
    assert d["received"] == 1 and d["completed"] == 1 and d["pending_faults"] == 0
    assert d["by_path"] == {"/v1/chat/completions": 1}
    assert "received=1" in repr(sim)
    sim.stats.reset()
    assert sim.stats.received == 0 and sim.stats.by_path == {}


async def test_wait_for_times_out_with_the_stats(sim: Simulator) -> None:
    with pytest.raises(TimeoutError, match="received"):
        await sim.wait_for(lambda st: st.received > 0, timeout=0.05)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Simulator(output_tokens=0)
    with pytest.raises(ValueError):
        Simulator(rpm=0)
    with pytest.raises(ValueError):
        Simulator(period=0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = Simulator().base_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cli_simulate_serves_until_terminated() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncllm.cli",
        "simulate",
        "--port",
        str(port),
        "--output-tokens",
        "3",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            line = (await proc.stdout.readline()).decode().strip()
        assert line == f"http://127.0.0.1:{port}"
        async with openai.AsyncOpenAI(base_url=line + "/v1", api_key="t", max_retries=0) as oai:
            r = await oai.chat.completions.create(model="m", messages=USER)
        assert r.usage is not None and r.usage.completion_tokens == 3
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"'completed': 1" in err
