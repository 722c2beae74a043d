"""The ready-made acceptance predicates, their verdicts, and the JSON checks behind them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from asyncllm import ConfigurationError, Response, ToolCall, Usage
from asyncllm._build import build_request
from asyncllm.quality import (
    all_of,
    assess,
    matches,
    no_content_filter,
    no_refusal,
    not_empty,
    not_truncated,
    reason_code,
    valid_json,
    valid_tool_arguments,
)
from asyncllm.quality._accept import coerce_accept, judge
from asyncllm.quality._signals import json_error


def answer(text: str = "ok", finish: str | None = "stop", raw: str | None = None, **kw: object):
    return Response(
        text=text,
        finish_reason=finish,  # type: ignore[arg-type]
        usage=Usage(3, 7),
        provider="p",
        model="m",
        raw_finish_reason=raw if raw is not None else finish,
        **kw,  # type: ignore[arg-type]
    )


class Person(BaseModel):
    name: str
    age: int


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        },
    }
]


def test_ready_made_predicates_accept_good_answers_and_name_the_problem() -> None:
    good = answer("Hello")
    for check in (not_truncated, not_empty, no_refusal, no_content_filter):
        assert check(good) is None
    assert str(not_truncated(answer("cut", "length"))).startswith("truncated:")
    assert str(not_empty(answer("  \n"))).startswith("empty:")
    assert not_empty(answer("", "tool_calls", tool_calls=(ToolCall("1", "add", "{}"),))) is None
    refused = answer("I can't", "content_filter", raw="refusal")
    assert str(no_refusal(refused)).startswith("refusal:")
    assert no_content_filter(refused) is None  # a refusal is not the content filter
    filtered = answer("", "content_filter")
    assert str(no_content_filter(filtered)).startswith("content_filter:")
    assert no_refusal(filtered) is None


def test_no_refusal_can_also_match_phrases() -> None:
    check = no_refusal(phrases=["I cannot", "I'm sorry"])
    assert str(check(answer("  i'm SORRY, no."))).startswith("refusal:")
    assert check(answer("Sure: here it is")) is None
    assert check(answer("x", "content_filter", raw="refusal")) is not None


def test_json_predicates() -> None:
    assert valid_json()(answer('{"a": 1}')) is None
    assert str(valid_json()(answer('{"a": '))).startswith("invalid_json:")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert valid_json(schema)(answer('{"a": 1}')) is None
    assert "missing required property 'a'" in str(valid_json(schema)(answer("{}")))
    assert matches(Person)(answer('{"name": "Ada", "age": 36}')) is None
    verdict = str(matches(Person)(answer('{"name": "Ada", "age": "old"}')))
    assert verdict.startswith("invalid_output:") and "age" in verdict
    assert matches(list[int])(answer("[1, 2]")) is None


def test_tool_argument_predicate() -> None:
    check = valid_tool_arguments(TOOLS)
    ok = answer("", "tool_calls", tool_calls=(ToolCall("1", "add", '{"a": 1, "b": 2}'),))
    assert check(ok) is None
    for args, why in (
        ('{"a": 1}', "missing required property 'b'"),
        ('{"a": 1, "b": "2"}', "expected integer"),
        ('{"a": 1, "b": 2, "c": 3}', "unexpected property 'c'"),
        ("[1, 2]", "expected a JSON object"),
        ('{"a": 1', "not valid JSON"),
    ):
        bad = answer("", "tool_calls", tool_calls=(ToolCall("1", "add", args),))
        assert why in str(check(bad)), args
    unknown = answer("", "tool_calls", tool_calls=(ToolCall("1", "sub", "{}"),))
    assert "unknown tool 'sub'" in str(check(unknown))


def test_schema_subset_follows_refs_and_combinators() -> None:
    schema = {
        "$defs": {"Pet": {"type": "object", "properties": {"kind": {"enum": ["cat", "dog"]}}}},
        "type": "object",
        "properties": {
            "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "n": {"type": ["integer", "null"]},
        },
    }
    assert json_error('{"pets": [{"kind": "cat"}], "note": null, "n": 2}', schema) is None
    assert "is not one of" in str(json_error('{"pets": [{"kind": "cow"}]}', schema))
    assert "matches none of anyOf" in str(json_error('{"note": 3}', schema))
    assert "expected one of" in str(json_error('{"n": "x"}', schema))
    assert "expected integer, got boolean" in str(json_error("true", {"type": "integer"}))
    assert json_error("2.0", {"type": "integer"}) is None


async def test_verdicts_sync_async_and_combined() -> None:
    async def slow_ok(r: Response) -> bool:
        return True

    def says_no(r: Response) -> bool:
        return False

    assert await judge((slow_ok, not_empty), answer("x")) is None
    assert await judge((slow_ok, says_no), answer("x")) == "rejected by says_no"
    assert await judge((lambda r: "", not_empty), answer("x")) == "rejected by <lambda>"
    combined = all_of(not_truncated, not_empty)
    assert await judge((combined,), answer("", "length")) is not None
    assert str(await judge((combined,), answer(" "))).startswith("empty")
    with pytest.raises(TypeError, match="returned int"):
        await judge((lambda r: 1,), answer())


def test_accept_is_checked_and_reason_codes_are_short() -> None:
    assert coerce_accept(None) is None
    assert coerce_accept([]) == ()
    assert coerce_accept(not_empty) == (not_empty,)
    with pytest.raises(ConfigurationError):
        coerce_accept({"a": not_empty})
    assert reason_code("truncated: finish_reason=length") == "truncated"
    assert reason_code("") == "rejected"
    assert len(reason_code("x" * 100)) == 40


def test_assess_reads_every_signal() -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": {"type": "object", "required": ["a"]}}}
    request = build_request("hi", {"response_format": fmt, "tools": TOOLS})
    q = assess(request, answer('{"b": 1}', "length"))
    assert (q.finish, q.structured, q.invalid_json, q.empty, q.output_tokens) == (
        "length",
        True,
        True,
        False,
        7,
    )
    calls = (ToolCall("1", "add", '{"a": 1, "b": 2}'), ToolCall("2", "add", "{}"))
    q = assess(request, answer('{"a": 1}', "tool_calls", tool_calls=calls), rejected="x: y")
    assert (q.finish, q.invalid_json, q.tool_calls, q.invalid_tool_arguments, q.rejected) == (
        "tool_calls",
        False,
        2,
        1,
        "x: y",
    )
    plain = assess(build_request("hi", {}), answer("", None))
    assert plain.finish == "unknown" and plain.empty and not plain.structured
    model_fmt = assess(build_request("hi", {"response_format": Person}), answer("{}"))  # type: ignore[dict-item]
    assert model_fmt.structured and model_fmt.invalid_json
