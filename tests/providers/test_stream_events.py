"""Stream event mapping on shapes the simulator does not produce (fed without a server)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from asyncllm import Overloaded, ToolCall, Usage
from asyncllm.providers._anthropic_wire import AnthropicStream
from asyncllm.providers._base import StreamAccumulator
from asyncllm.providers._headers import openai_rate_limits
from asyncllm.providers._native import Endpoint, NativeStream
from asyncllm.providers._openai_wire import OpenAIStream


def endpoint() -> Endpoint:
    return Endpoint(
        provider="p",
        url="http://127.0.0.1:9/x",
        headers={},
        timeout=None,
        connect_timeout=None,
        parse_limits=openai_rate_limits,
    )


def fold(stream: NativeStream, events: list[tuple[str | None, Any]]) -> StreamAccumulator:
    acc = StreamAccumulator()
    for name, obj in events:
        stream._on_event(name, obj if isinstance(obj, bytes) else orjson.dumps(obj))
    while stream._pending:
        acc.add(stream._pending.popleft())
    return acc


def test_anthropic_text_then_tool_with_thinking_and_cache_usage() -> None:
    s = AnthropicStream(endpoint(), b"", "claude")
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "model": "claude-x",
                    "usage": {
                        "input_tokens": 10,
                        "output_tokens": 1,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 5,
                    },
                },
            },
        ),
        (
            None,
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            None,
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        (None, {"type": "content_block_stop", "index": 0}),
        (
            None,
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            None,
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Checking"},
            },
        ),
        ("ping", {"type": "ping"}),
        (None, {"type": "content_block_stop", "index": 1}),
        (
            None,
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "lookup",
                    "input": {},
                },
            },
        ),
        (
            None,
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '{"w": "ab'},
            },
        ),
        (
            None,
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": 'c", "n": 2}'},
            },
        ),
        (None, {"type": "content_block_stop", "index": 2}),
        (
            None,
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 30},
            },
        ),
        (None, {"type": "message_stop"}),
    ]
    acc = fold(s, events)
    r = acc.response(provider="p", model=s.model)
    assert r.text == "Checking" and r.model == "claude-x"
    assert r.tool_calls == (ToolCall(id="toolu_1", name="lookup", arguments='{"w":"abc","n":2}'),)
    assert r.usage == Usage(
        input_tokens=115, output_tokens=30, cache_read_tokens=100, cache_write_tokens=5
    )
    assert (r.finish_reason, r.raw_finish_reason) == ("tool_calls", "tool_use")
    assert s._finished and s._count == 3  # text + tool start + tool arguments


def test_anthropic_error_event() -> None:
    s = AnthropicStream(endpoint(), b"", "claude")
    with pytest.raises(Overloaded):
        fold(
            s,
            [
                (
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                )
            ],
        )


def test_openai_parallel_tool_calls_and_cached_usage() -> None:
    s = OpenAIStream(endpoint(), b"", "gpt")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def tc(i: int, **kw: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": i, **kw}]}

    events: list[tuple[str | None, Any]] = [
        (None, chunk({"role": "assistant", "content": None})),
        (None, chunk(tc(0, id="a", function={"name": "f", "arguments": ""}))),
        (None, chunk(tc(1, id="b", function={"name": "g", "arguments": '{"x"'}))),
        (None, chunk(tc(0, function={"arguments": "{}"}))),
        (None, chunk(tc(1, function={"arguments": ":1}"}))),
        (None, chunk({}, "tool_calls")),
        (
            None,
            {
                "model": "gpt-x",
                "choices": [],
                "usage": {
                    "prompt_tokens": 50,
                    "completion_tokens": 7,
                    "prompt_tokens_details": {"cached_tokens": 32},
                },
            },
        ),
        (None, b"[DONE]"),
    ]
    r = fold(s, events).response(provider="p", model=s.model)
    assert r.tool_calls == (ToolCall("a", "f", "{}"), ToolCall("b", "g", '{"x":1}'))
    assert r.usage == Usage(input_tokens=50, output_tokens=7, cache_read_tokens=32)
    assert (r.finish_reason, r.model, s._finished) == ("tool_calls", "gpt-x", True)


def test_openai_text_with_finish_in_one_chunk_and_unknown_reason() -> None:
    s = OpenAIStream(endpoint(), b"", "gpt")
    events: list[tuple[str | None, Any]] = [
        (None, {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}),
        (
            None,
            {"choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "eos_token"}]},
        ),
    ]
    r = fold(s, events).response(provider="p", model=s.model)
    assert (r.text, r.finish_reason, r.raw_finish_reason) == ("Hi!", "other", "eos_token")
    assert r.model == "gpt"
