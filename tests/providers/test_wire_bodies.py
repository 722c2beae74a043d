"""Request bodies: what each wire format puts on the wire for a ChatRequest."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from asyncllm import InvalidRequestError, Message
from asyncllm._build import build_request
from asyncllm.providers import _anthropic_wire as anth
from asyncllm.providers import _openai_wire as oai
from asyncllm.providers._native import dumps

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up",
        "parameters": {"type": "object", "properties": {"w": {"type": "string"}}},
    },
}


def test_openai_body() -> None:
    r = build_request(
        "hi",
        {
            "system": "sys",
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 5,
            "stop": "END",
            "seed": 4,
            "response_format": {"type": "json_object"},
            "tools": [TOOL],
            "tool_choice": "auto",
            "provider_options": {"logprobs": True, "temperature": 0.0},
        },
    )
    body = oai.build_body(r, "gpt", stream=True)
    assert body == {
        "model": "gpt",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
        "temperature": 0.0,  # provider_options win
        "top_p": 0.9,
        "max_tokens": 5,
        "stop": ["END"],
        "seed": 4,
        "response_format": {"type": "json_object"},
        "tools": [TOOL],
        "tool_choice": "auto",
        "stream": True,
        "stream_options": {"include_usage": True},
        "logprobs": True,
    }
    assert "stream" not in oai.build_body(r, "gpt", stream=False)
    assert "stream_options" not in oai.build_body(r, "gpt", stream=True, stream_usage=False)


def test_openai_messages_keep_tool_fields_and_parts() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    r = build_request(
        [
            {"role": "user", "content": [{"type": "text", "text": "a"}], "name": "bob"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": "ok", "tool_call_id": "c1"},
        ],
        {},
    )
    msgs = oai.build_body(r, "m", stream=False)["messages"]
    assert msgs == [
        {"role": "user", "content": [{"type": "text", "text": "a"}], "name": "bob"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
    ]


def test_anthropic_body_basics() -> None:
    r = build_request(
        [
            {"role": "system", "content": "one"},
            {"role": "developer", "content": "two"},
            {"role": "user", "content": "hi"},
        ],
        {"system": "zero", "temperature": 0.5, "stop": ["x", "y"], "seed": 3},
    )
    body = anth.build_body(r, "claude", stream=True)
    assert body == {
        "model": "claude",
        "max_tokens": anth.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "zero\n\none\n\ntwo",
        "temperature": 0.5,
        "stop_sequences": ["x", "y"],
        "stream": True,
    }
    assert anth.build_body(r, "c", stream=False, default_max_tokens=9)["max_tokens"] == 9
    assert (
        anth.build_body(build_request("a", {"max_tokens": 7}), "c", stream=False)["max_tokens"] == 7
    )


def test_anthropic_tools_and_choice() -> None:
    native = {"name": "raw", "input_schema": {"type": "object"}}
    r = build_request("q", {"tools": [TOOL, native], "tool_choice": "required"})
    body = anth.build_body(r, "c", stream=False)
    assert body["tools"] == [
        {
            "name": "lookup",
            "description": "Look a word up",
            "input_schema": {"type": "object", "properties": {"w": {"type": "string"}}},
        },
        native,
    ]
    assert body["tool_choice"] == {"type": "any"}
    choices: list[tuple[Any, Any]] = [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "lookup"}}, {"type": "tool", "name": "lookup"}),
        ({"type": "tool", "name": "raw"}, {"type": "tool", "name": "raw"}),
    ]
    for given, want in choices:
        got = anth.build_body(build_request("q", {"tool_choice": given}), "c", stream=False)
        assert got["tool_choice"] == want


def test_anthropic_tool_conversation() -> None:
    r = build_request(
        [
            Message(role="user", content="go"),
            Message(
                role="assistant",
                content="Let me check.",
                tool_calls=(
                    {"id": "a", "function": {"name": "lookup", "arguments": '{"w": "x"}'}},
                    {"id": "b", "function": {"name": "lookup", "arguments": "not json"}},
                ),
            ),
            Message(role="tool", content="X!", tool_call_id="a"),
            Message(role="tool", content="B?", tool_call_id="b"),
            Message(role="user", content="thanks"),
        ],
        {},
    )
    assert anth.build_body(r, "c", stream=False)["messages"] == [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "a", "name": "lookup", "input": {"w": "x"}},
                {"type": "tool_use", "id": "b", "name": "lookup", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "X!"},
                {"type": "tool_result", "tool_use_id": "b", "content": "B?"},
            ],
        },
        {"role": "user", "content": "thanks"},
    ]


def test_anthropic_image_parts() -> None:
    r = build_request(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                ],
            }
        ],
        {},
    )
    (msg,) = anth.build_body(r, "c", stream=False)["messages"]
    assert msg["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]


def test_anthropic_json_modes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    body = anth.build_body(build_request("q", {"response_format": fmt}), "c", stream=False)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    body = anth.build_body(
        build_request("q", {"response_format": {"type": "json_object"}, "system": "s"}),
        "c",
        stream=False,
    )
    assert body["system"] == "s\n\n" + anth.JSON_INSTRUCTION
    assert "output_config" not in body


def test_canonical_arguments() -> None:
    assert anth.canonical_arguments('{"a": 1,  "b": [1, 2]}') == '{"a":1,"b":[1,2]}'
    assert anth.canonical_arguments({"a": 1}) == '{"a":1}'
    assert anth.canonical_arguments("") == "{}"
    assert anth.canonical_arguments(None) == "{}"
    assert anth.canonical_arguments('{"cut": ') == '{"cut": '
    # A tool input that is not an object (a misbehaving server) is passed on, not a crash:
    # the answer's quality check reports it as invalid tool arguments.
    assert anth.canonical_arguments([1, "x"]) == '[1,"x"]'  # type: ignore[arg-type]


def test_dumps_accepts_mappings_and_tuples() -> None:
    from types import MappingProxyType

    body = {"a": MappingProxyType({"b": (1, 2)}), "c": frozenset()}
    assert orjson.loads(dumps(body)) == {"a": {"b": [1, 2]}, "c": []}


def test_a_failed_tool_result_is_marked_is_error_on_anthropic_and_said_in_text_on_openai() -> None:
    from asyncllm import ToolCall
    from asyncllm.tools import tool_result

    call = ToolCall(id="t1", name="lookup", arguments="{}")
    failed = tool_result(call, "no such city", is_error=True)
    ok = tool_result(call, {"temp": 21})
    assert failed.is_error and not ok.is_error
    for message, marked in ((failed, True), (ok, False)):
        r = build_request([{"role": "user", "content": "go"}, message], {})
        (block,) = anth.build_body(r, "c", stream=False)["messages"][1]["content"]
        assert block.get("is_error", False) is marked
        wire = oai.build_body(r, "m", stream=False)["messages"][1]
        assert "is_error" not in wire  # OpenAI's wire has no such field...
    assert failed.content == "Error: no such city"  # ...so the text says it
    # As a plain dict, the mark is read too, and refused where it means nothing.
    r = build_request(
        [
            {"role": "user", "content": "go"},
            {"role": "tool", "tool_call_id": "t1", "content": "boom", "is_error": True},
        ],
        {},
    )
    assert anth.build_body(r, "c", stream=False)["messages"][1]["content"][0]["is_error"]
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.is_error"):
        build_request([{"role": "user", "content": "x", "is_error": True}], {})
