"""Tool definitions: schemas from functions and pydantic models, validation, messages."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
import pytest

from asyncllm import ConfigurationError, InvalidRequestError, Message, Response, ToolCall, Usage
from asyncllm.tools import Tool, strict_schema, tool, tool_result


def get_weather(city: str, days: int = 3, unit: Literal["C", "F"] = "C") -> str:
    """Get the weather forecast.

    Args:
        city: The city, e.g.
            "Paris".
        days: How many days ahead.
        unit: Temperature unit.

    Returns:
        The forecast.
    """
    return f"{city}: sunny for {days} days ({unit})"


def test_function_tool_schema_from_signature_hints_and_docstring() -> None:
    t = Tool.from_function(get_weather)
    spec = t.to_spec()
    fn = spec["function"]
    assert spec["type"] == "function" and fn["name"] == "get_weather"
    assert fn["description"] == "Get the weather forecast."
    params = fn["parameters"]
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {
        "description": 'The city, e.g. "Paris".',
        "title": "City",
        "type": "string",
    }
    assert params["properties"]["days"]["default"] == 3
    assert params["properties"]["unit"]["enum"] == ["C", "F"]
    assert params["additionalProperties"] is False
    assert "strict" not in fn


def test_annotated_field_descriptions_and_decorator_options() -> None:
    @tool(name="lookup", strict=True)
    def f(q: Annotated[str, pydantic.Field(description="the query")], n: int = 1) -> str:
        """Look something up."""
        return q * n

    fn = f.to_spec()["function"]
    assert fn["name"] == "lookup" and fn["strict"] is True
    assert fn["parameters"]["properties"]["q"]["description"] == "the query"
    # strict: every property required, none may be left out
    assert fn["parameters"]["required"] == ["q", "n"]


def test_model_tool() -> None:
    class Search(pydantic.BaseModel):
        """Search the docs.

        Longer text the model does not need.
        """

        query: str
        limit: int = 5

    t = Tool.from_model(Search)
    assert t.name == "Search" and t.description.startswith("Search the docs.")
    assert t.validate('{"query": "x"}') == Search(query="x", limit=5)


def test_bad_tool_definitions_raise_clear_errors() -> None:
    def star(*args: int) -> None: ...

    with pytest.raises(ConfigurationError, match=r"star.*args"):
        Tool.from_function(star)
    with pytest.raises(ConfigurationError, match="name"):
        Tool.from_function(get_weather, name="has space")
    with pytest.raises(ConfigurationError, match="pydantic model"):
        Tool("x", dict)  # type: ignore[arg-type]


def test_check_sets_parsed_or_error() -> None:
    t = Tool.from_function(get_weather)
    ok = t.check(ToolCall("c1", "get_weather", '{"city": "Oslo", "days": 2}'))
    assert ok.error is None and ok.parsed.city == "Oslo" and ok.parsed.days == 2
    bad = t.check(ToolCall("c2", "get_weather", '{"days": "many"}'))
    assert bad.parsed is None
    assert bad.error is not None and "city" in bad.error and "days" in bad.error
    not_json = t.check(ToolCall("c3", "get_weather", "{oops"))
    assert not_json.parsed is None and "JSON" in (not_json.error or "")
    extra = t.check(ToolCall("c4", "get_weather", '{"city": "x", "zzz": 1}'))
    assert extra.error is not None and "zzz" in extra.error


def test_strict_schema_closes_objects_and_keeps_refs() -> None:
    class Inner(pydantic.BaseModel):
        n: int = pydantic.Field(ge=1, description="count")

    class Outer(pydantic.BaseModel):
        inner: Inner
        tags: list[str] = []
        note: str | None = None

    s = strict_schema(Outer.model_json_schema())
    assert s["additionalProperties"] is False
    assert s["required"] == ["inner", "tags", "note"]
    inner = s["$defs"]["Inner"]
    assert inner["additionalProperties"] is False and inner["required"] == ["n"]
    n = inner["properties"]["n"]
    assert "minimum" not in n and "exclusiveMinimum" not in n
    assert "count" in n["description"] and "minimum: 1" in n["description"]
    assert s["properties"]["inner"] == {"$ref": "#/$defs/Inner"}
    assert "default" not in s["properties"]["note"]


def test_to_message_and_tool_result() -> None:
    r = Response(
        text="checking",
        finish_reason="tool_calls",
        usage=Usage(),
        provider="p",
        model="m",
        tool_calls=(ToolCall("c1", "get_weather", '{"city":"Oslo"}'),),
    )
    m = r.to_message()
    assert m == Message(
        role="assistant",
        content="checking",
        tool_calls=(
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            },
        ),
    )
    assert tool_result(r.tool_calls[0], {"t": 21}) == Message(
        role="tool", content='{"t":21}', tool_call_id="c1"
    )
    assert tool_result("c1", "boom", is_error=True).content == "Error: boom"
    with pytest.raises(InvalidRequestError):
        tool_result("", "x")
    plain = Response(text="hi", finish_reason="stop", usage=Usage(), provider="p", model="m")
    assert plain.to_message() == Message(role="assistant", content="hi")


def test_arguments_dict() -> None:
    assert ToolCall("c", "f", '{"a": 1}').arguments_dict() == {"a": 1}
    with pytest.raises(ValueError, match="not JSON"):
        ToolCall("c", "f", "{").arguments_dict()
    with pytest.raises(ValueError, match="not a JSON object"):
        ToolCall("c", "f", "[1]").arguments_dict()


def test_tools_exports() -> None:
    import asyncllm.tools as tools

    names = list(tools.__all__)
    assert len(set(names)) == len(names)
    for name in names:
        obj = getattr(tools, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_build_request_turns_typed_values_into_plain_ones() -> None:
    """A pydantic model or Tool given straight to a request no longer reaches the JSON
    encoder as a class (it used to fail with "Type is not JSON serializable")."""
    import orjson

    from asyncllm._build import build_request

    class Out(pydantic.BaseModel):
        a: int

    r = build_request("x", {"response_format": Out, "tools": [get_weather, tool(get_weather)]})
    assert r.response_format is not None and r.response_format["type"] == "json_schema"
    assert [t["function"]["name"] for t in r.tools or ()] == ["get_weather", "get_weather"]
    orjson.dumps({"rf": r.response_format, "tools": r.tools})
    with pytest.raises(InvalidRequestError, match="response_format"):
        build_request("x", {"response_format": "json"})
    with pytest.raises(InvalidRequestError, match=r"tools\[0\]"):
        build_request("x", {"tools": [42]})


def test_the_schema_is_part_of_the_cache_key() -> None:
    from asyncllm._build import build_request
    from asyncllm.cache._key import cache_key

    class A(pydantic.BaseModel):
        x: int

    class B(pydantic.BaseModel):
        x: str

    route = (("p", "openai", "m"),)
    keys = {cache_key(build_request("q", {"response_format": m}), route) for m in (A, B, A)}
    assert len(keys) == 2
