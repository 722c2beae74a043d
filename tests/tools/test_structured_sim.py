"""Structured output against the simulator: both formats, both backends, streamed and not."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from asyncllm import Client, StructuredOutputError
from asyncllm.cache import ResponseCache
from asyncllm.testing import Simulator, Turn
from asyncllm.tools import response_format_for


class Address(pydantic.BaseModel):
    street: str
    zip_code: str | None = None


class Person(pydantic.BaseModel):
    """A person."""

    name: str
    age: int = pydantic.Field(ge=0)
    tags: list[str]
    address: Address


async def _ask(client: Client, stream: bool, **params: Any) -> Any:
    if not stream:
        return await client.complete("who?", **params)
    async with client.stream("who?", **params) as s:
        text = "".join([c.text async for c in s])
    assert text == s.response.text  # type: ignore[union-attr]
    return s.response


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_made_up_answer_validates(
    client: Client, case: tuple[str, str], stream: bool, body: Any
) -> None:
    r = await _ask(client, stream, response_format=Person)
    assert isinstance(r.parsed, Person)
    assert r.parsed == Person.model_validate_json(r.text)
    sent = body()
    schema = response_format_for(Person)["json_schema"]["schema"]
    if case[0] == "openai":
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {
                "name": "Person",
                "schema": schema,
                "strict": True,
                "description": "A person.",
            },
        }
    else:
        assert sent["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "tags", "address"]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_validation_failure_carries_the_raw_text(
    client: Client, sim: Simulator, stream: bool
) -> None:
    bad = '{"name": "Ann", "age": -3, "tags": [], "address": {}}'
    sim.script(Turn.json(bad))
    with pytest.raises(StructuredOutputError) as info:
        await _ask(client, stream, response_format=Person)
    err = info.value
    assert err.raw_text == bad and err.attempts == 1
    assert err.response is not None and err.response.text == bad
    assert any(e.startswith("age:") for e in err.errors)
    assert any(e.startswith("address.street:") for e in err.errors)
    assert "Person" in str(err)


async def test_not_json_and_cut_short(client: Client, sim: Simulator) -> None:
    sim.script(Turn.text("Sure! Here is the JSON you asked for"))
    with pytest.raises(StructuredOutputError, match="Invalid JSON") as info:
        await client.complete("x", response_format=Person)
    assert info.value.raw_text == "Sure! Here is the JSON you asked for"
    sim.script(Turn.json({"name": "Ann", "age": 3, "tags": [], "address": {"street": "s"}}))
    with pytest.raises(StructuredOutputError, match="cut at max_tokens"):
        await client.complete("x", response_format=Person, max_tokens=2)


async def test_retry_shows_the_model_its_errors(
    client: Client, sim: Simulator, case: tuple[str, str], body: Any
) -> None:
    good = {"name": "Ann", "age": 30, "tags": ["a"], "address": {"street": "Main"}}
    sim.script(Turn.json('{"name": "Ann"}'), Turn.json(good))
    r = await client.complete("who?", response_format=Person, output_retries=2)
    assert r.parsed == Person.model_validate(good)
    assert sim.stats.received == 2
    retry = body()
    last = retry["messages"][-1]
    text = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    assert "did not validate" in text and "age: Field required" in text
    assert retry["messages"][-2]["role"] == "assistant"


async def test_retries_exhausted(client: Client, sim: Simulator) -> None:
    sim.script(Turn.json("{}"), Turn.json("[]"))
    with pytest.raises(StructuredOutputError) as info:
        await client.complete("who?", response_format=Person, output_retries=1)
    assert info.value.attempts == 2 and info.value.raw_text == "[]"
    assert sim.stats.received == 2


async def test_output_retries_must_be_a_count(client: Client) -> None:
    from asyncllm import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="output_retries"):
        await client.complete("x", response_format=Person, output_retries=-1)


async def test_the_schema_is_part_of_the_cache_key(sim: Simulator) -> None:
    class Other(pydantic.BaseModel):
        name: str

    from _tooltest import make_provider

    async with Client(
        make_provider(sim, "openai", "native"), cache=ResponseCache(), log=False, metrics=False
    ) as c:
        a = await c.complete("who?", response_format=Person, temperature=0)
        b = await c.complete("who?", response_format=Person, temperature=0)
        o = await c.complete("who?", response_format=Other, temperature=0)
        assert not a.cached and b.cached and not o.cached
        assert isinstance(b.parsed, Person) and isinstance(o.parsed, Other)
        assert sim.stats.received == 2
        # An answer that does not validate is not kept: the next identical call asks again.
        sim.script(Turn.json("{}"))
        for _ in range(2):
            with pytest.raises(StructuredOutputError):
                await c.complete("again", response_format=Person, temperature=0)
            sim.script(Turn.json("[]"))
        assert sim.stats.received == 4
