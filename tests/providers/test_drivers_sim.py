"""Every driver, over real loopback HTTP against the simulator, on both backends.

Each scenario runs on the native and the SDK backend (each against a fresh, identically
seeded simulator) and the two results must be equal; then the result itself is checked.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from _drivertest import VENDORS, consume, norm, on_both, req

from asyncllm import Message
from asyncllm.providers._driver import Driver
from asyncllm.testing import Fault, Simulator

pytestmark = pytest.mark.parametrize("vendor", VENDORS)

TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    },
)


def sim_input_tokens(vendor: str, texts: list[str], system: str = "") -> int:
    """The simulator's accounting: OpenAI counts the system prompt as a message."""
    n = len(texts) + (1 if system and vendor == "openai" else 0)
    return math.ceil((len(system) + sum(map(len, texts))) / 4) + 3 * n


async def test_complete_and_stream_agree(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        done = await p.complete(req(seed=3))
        streamed = await consume(p, req(seed=3))
        assert norm(done)[:7] == norm(streamed)[:7]
        assert len(streamed.chunks) == 8 and done.chunks == ()
        return norm(done)

    text, finish, _raw, usage, provider, model, tools, limits = await on_both(
        vendor, scenario, sim_options={"output_tokens": 8}
    )
    assert len(text.split()) == 8 and finish == "stop" and tools == ()
    assert usage.output_tokens == 8
    assert usage.input_tokens == sim_input_tokens(vendor, ["Tell me something."])
    assert (provider, model) == (vendor, "sim-model")
    assert limits is not None and limits[0] == 10_000


async def test_system_prompt_and_system_messages(vendor: str) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]

    async def scenario(p: Driver, sim: Simulator) -> Any:
        a = await p.complete(req(messages, system="You are a test."))
        b = await consume(p, req(messages, system="You are a test."))
        assert norm(a)[:7] == norm(b)[:7]
        return a.usage.input_tokens

    got = await on_both(vendor, scenario)
    if vendor == "openai":  # two system messages, in order, before the conversation
        want = sim_input_tokens(
            vendor, ["You are a test.", "Be terse.", "Hi there", "Hello.", "Again"]
        )
    else:  # both moved into the system field (joined by a blank line)
        want = sim_input_tokens(
            vendor, ["Hi there", "Hello.", "Again"], system="You are a test.\n\nBe terse."
        )
    assert got == want


async def test_max_tokens_gives_length(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        a = await p.complete(req(max_tokens=3))
        b = await consume(p, req(max_tokens=3))
        assert norm(a)[:7] == norm(b)[:7]
        return a.finish_reason, a.raw_finish_reason, a.usage.output_tokens

    raw = "length" if vendor == "openai" else "max_tokens"
    assert await on_both(vendor, scenario) == ("length", raw, 3)


async def test_stop_sequence(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        full = await p.complete(req())
        stop = " " + full.text.split()[3]
        a = await p.complete(req(stop=[stop]))
        b = await consume(p, req(stop=[stop]))
        assert norm(a)[:7] == norm(b)[:7]
        assert full.text.startswith(a.text) and stop not in a.text
        return a.text, a.finish_reason, a.raw_finish_reason

    text, finish, raw = await on_both(vendor, scenario)
    assert len(text.split()) == 3 and finish == "stop"
    assert raw == ("stop" if vendor == "openai" else "stop_sequence")


async def test_tool_calls(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        a = await p.complete(req("Weather?", tools=TOOLS, tool_choice="auto"))
        b = await consume(p, req("Weather?", tools=TOOLS, tool_choice="auto"))
        assert norm(a)[:6] == norm(b)[:6]
        assert [(t.name, t.arguments) for t in a.tool_calls] == [
            (t.name, t.arguments) for t in b.tool_calls
        ]
        return a.finish_reason, a.raw_finish_reason, a.text, a.tool_calls

    finish, raw, text, calls = await on_both(vendor, scenario)
    assert finish == "tool_calls" and text == ""
    assert raw == ("tool_calls" if vendor == "openai" else "tool_use")
    (call,) = calls
    assert call.name == "get_weather" and call.id
    args = orjson.loads(call.arguments)
    assert set(args) == {"city", "days"} and isinstance(args["days"], int)


async def test_tool_round_trip_messages(vendor: str) -> None:
    """Assistant tool calls and tool results are translated into an accepted request."""
    conversation = [
        Message(role="user", content="Weather in Paris and Rome?"),
        Message(
            role="assistant",
            content="",
            tool_calls=(
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ),
        ),
        Message(role="tool", content="sunny", tool_call_id="c1"),
        Message(role="tool", content="rainy", tool_call_id="c2"),
    ]

    async def scenario(p: Driver, sim: Simulator) -> Any:
        r = await p.complete(req(conversation, tools=TOOLS, tool_choice="none"))
        return r.finish_reason, r.text

    finish, text = await on_both(vendor, scenario)
    assert finish == "stop" and text


async def test_forced_tool_choice(vendor: str) -> None:
    tools = (*TOOLS, {"type": "function", "function": {"name": "other", "parameters": {}}})
    choice = {"type": "function", "function": {"name": "other"}}

    async def scenario(p: Driver, sim: Simulator) -> Any:
        r = await p.complete(req("x", tools=tools, tool_choice=choice))
        return [t.name for t in r.tool_calls]

    assert await on_both(vendor, scenario) == ["other"]


async def test_json_mode_passthrough(vendor: str) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "n": {"type": "integer"}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}

    async def scenario(p: Driver, sim: Simulator) -> Any:
        a = await p.complete(req(response_format=fmt))
        b = await consume(p, req(response_format=fmt))
        assert norm(a)[:7] == norm(b)[:7]
        return a.text

    assert set(orjson.loads(await on_both(vendor, scenario))) == {"name", "n"}


async def test_json_object_mode(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        return (await p.complete(req(response_format={"type": "json_object"}))).text

    text = await on_both(vendor, scenario)
    if vendor == "openai":
        assert isinstance(orjson.loads(text), dict)
    else:  # Anthropic has no JSON-object mode: an instruction is added instead
        assert text


async def test_content_filter_finish(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        sim.inject(Fault.content_filter(after=2), times=2)
        a = await p.complete(req())
        b = await consume(p, req())
        assert norm(a)[:7] == norm(b)[:7]
        return a.finish_reason, a.raw_finish_reason, len(a.text.split())

    raw = "content_filter" if vendor == "openai" else "refusal"
    assert await on_both(vendor, scenario) == ("content_filter", raw, 2)


async def test_provider_options_are_merged(vendor: str) -> None:
    # A field the request type does not model, given as a provider option, reaches the wire.
    opts = {"seed": 11} if vendor == "openai" else {"stop_sequences": ["zzz", " "]}

    async def scenario(p: Driver, sim: Simulator) -> Any:
        plain = await p.complete(req())
        merged = await p.complete(req(provider_options=opts))
        streamed = await consume(p, req(provider_options=opts))
        assert norm(merged)[:7] == norm(streamed)[:7]
        return plain.text, merged.text, merged.raw_finish_reason

    plain, merged, raw = await on_both(vendor, scenario)
    assert plain != merged
    if vendor == "anthropic":
        assert raw == "stop_sequence" and merged == plain.split()[0]


async def test_rate_limit_headers_on_every_response(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        a = await p.complete(req())
        async with p.stream(req()) as s:
            seen = s.rate_limits
            async for _ in s:
                pass
        assert a.rate_limits is not None and seen is not None
        assert a.rate_limits.reset_requests is not None and a.rate_limits.reset_requests >= 0
        return (
            a.rate_limits.limit_requests,
            a.rate_limits.remaining_requests,
            seen.remaining_requests,
            seen.limit_tokens,
        )

    assert await on_both(vendor, scenario, sim_options={"rpm": 50, "tpm": 5000}) == (
        50,
        49,
        48,
        5000,
    )
