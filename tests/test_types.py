"""Core value types: input coercion, parameter validation, token estimates."""

from __future__ import annotations

import pytest

from asyncllm import ChatRequest, Chunk, InvalidRequestError, Message, Usage
from asyncllm._build import build_request
from asyncllm._messages import coerce_messages
from asyncllm._types import ToolCallDelta
from asyncllm.providers import StreamAccumulator


def test_prompt_string_becomes_one_user_message() -> None:
    assert coerce_messages("hi") == (Message(role="user", content="hi"),)


def test_openai_style_dicts_are_accepted_in_order() -> None:
    msgs = coerce_messages(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, "b"]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ]
    )
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool"]
    assert msgs[1].content == ({"type": "text", "text": "a"}, {"type": "text", "text": "b"})
    assert msgs[1].text() == "ab"
    assert msgs[2].tool_calls == ({"id": "c1"},)
    assert msgs[3].tool_call_id == "c1"


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("", "empty"),
        ([], "empty"),
        (42, "prompt string"),
        ([{"content": "x"}], "role"),
        ([{"role": "wizard", "content": "x"}], "role"),
        ([{"role": "user"}], "content"),
        ([{"role": "user", "content": 3}], "content"),
        ([{"role": "user", "content": [3]}], "part"),
        (["just a string in a list"], "dict"),
    ],
)
def test_malformed_messages_raise_a_typed_error(bad: object, needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        coerce_messages(bad)


def test_build_request_validates_parameters() -> None:
    r = build_request("x", {"stop": "END", "max_tokens": 5, "temperature": 0})
    assert r.stop == ("END",) and r.max_tokens == 5 and r.temperature == 0
    with pytest.raises(InvalidRequestError, match="unknown parameter"):
        build_request("x", {"temprature": 0.1})
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        build_request("x", {"max_tokens": 0})
    with pytest.raises(InvalidRequestError, match="temperature"):
        build_request("x", {"temperature": "hot"})
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        build_request("x", {"max_tokens": True})


def test_build_request_accepts_a_request_and_overrides_fields() -> None:
    base = build_request("x", {"model": "m1"})
    assert build_request(base, {}) is base
    assert build_request(base, {"model": "m2"}).model == "m2"


def test_token_estimate_grows_with_prompt_and_overestimates_chars_over_four() -> None:
    short = ChatRequest(messages=coerce_messages("hello"))
    long = ChatRequest(messages=coerce_messages("hello " * 100), system="sys")
    assert long.estimated_input_tokens() > short.estimated_input_tokens()
    # The simulator (and most tokenizers on English) count about chars/4 plus per-message
    # overhead; the estimate must not be below that or reservations would be too small.
    chars = len("hello " * 100) + 3
    assert long.estimated_input_tokens() >= -(-chars // 4) + 3 * 1


def test_accumulator_folds_text_tools_usage_and_finish() -> None:
    acc = StreamAccumulator()
    acc.add(Chunk(text="Hel"))
    acc.add(Chunk(text="lo"))
    acc.add(Chunk(tool_calls=(ToolCallDelta(index=0, id="c1", name="f", arguments='{"a"'),)))
    acc.add(Chunk(tool_calls=(ToolCallDelta(index=0, arguments=": 1}"),)))
    acc.add(Chunk(usage=Usage(3, 2), finish_reason="tool_calls", raw_finish_reason="tool_calls"))
    r = acc.response(provider="p", model="m")
    assert r.text == "Hello" and r.chunks == ("Hel", "lo")
    assert r.tool_calls[0].name == "f" and r.tool_calls[0].arguments == '{"a": 1}'
    assert r.usage.total_tokens == 5 and r.finish_reason == "tool_calls"
    assert r.time_to_first_token is not None and r.time_to_first_token <= r.latency


def test_build_request_and_coerce_messages_still_import_from_types() -> None:
    """They moved above the value types (no import circle); old imports keep working."""
    import asyncllm._types as types_module

    assert types_module.build_request is build_request
    assert types_module.coerce_messages is coerce_messages


def test_client_cache_true_is_a_memory_cache_and_junk_is_refused() -> None:
    import pytest

    from asyncllm import Client, ConfigurationError, ResponseCache
    from asyncllm.testing import FakeProvider

    assert isinstance(Client(FakeProvider(), cache=True)._cache, ResponseCache)
    assert Client(FakeProvider(), cache=False)._cache is None
    with pytest.raises(ConfigurationError, match=r"cache= takes a ResponseCache.*got str"):
        Client(FakeProvider(), cache="memory")
