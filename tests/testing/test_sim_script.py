"""Scripted turns and tool behaviour of the simulator, read through the official SDKs."""

from __future__ import annotations

import json

import anthropic
import openai
import pydantic
import pytest

from asyncllm.testing import Fault, Simulator, Turn

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
AN_WEATHER = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_turn_values() -> None:
    assert Turn.text("hi") == Turn(content="hi")
    assert Turn.json({"a": 1}) == Turn(content='{"a":1}')
    assert Turn.json("{oops") == Turn(content="{oops")
    assert Turn.tool_call("f") == Turn(calls=(("f", "{}"),))
    assert Turn.tool_calls(("f", {"x": 1}), ("g", "raw")).calls == (("f", '{"x":1}'), ("g", "raw"))
    with pytest.raises(ValueError, match="at least one"):
        Turn.tool_calls()
    with pytest.raises(TypeError, match=r"calls\[0\]"):
        Turn.tool_calls(("f",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="string"):
        Turn.text(1)  # type: ignore[arg-type]


async def test_script_queue_is_fifo_and_counted(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(TypeError, match="Turn"):
        sim.script("hi")  # type: ignore[arg-type]
    sim.script(Turn.text("one two three"), Turn.json({"a": 1}))
    assert sim.pending_turns == 2
    msgs = [{"role": "user", "content": "x"}]
    texts = []
    for _ in range(3):
        r = await oai.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
        texts.append(r.choices[0].message.content)
    assert texts[:2] == ["one two three", '{"a":1}']
    assert texts[2] and texts[2] not in texts[:2]  # back to made-up text
    assert sim.stats.scripted == 2 and sim.pending_turns == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_parallel_calls(sim: Simulator, oai: openai.AsyncOpenAI, stream: bool) -> None:
    sim.script(Turn.tool_calls(("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"})))
    msgs = [{"role": "user", "content": "x"}]
    if not stream:
        r = await oai.chat.completions.create(model="m", messages=msgs, tools=[WEATHER])  # type: ignore[arg-type,list-item]
        calls = [
            (c.id, c.function.name, c.function.arguments)
            for c in r.choices[0].message.tool_calls or ()
        ]
        finish = r.choices[0].finish_reason
    else:
        acc: dict[int, list[str]] = {}
        finish = None
        s = await oai.chat.completions.create(
            model="m", messages=msgs, tools=[WEATHER], stream=True
        )  # type: ignore[arg-type,list-item]
        async for chunk in s:
            for d in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
                slot = acc.setdefault(d.index, ["", "", ""])
                slot[0] += d.id or ""
                slot[1] += (d.function.name or "") if d.function else ""
                slot[2] += (d.function.arguments or "") if d.function else ""
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        calls = [tuple(v) for _, v in sorted(acc.items())]  # type: ignore[misc]
    assert finish == "tool_calls"
    assert [(n, json.loads(a)) for _, n, a in calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert len({i for i, _, _ in calls}) == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_parallel_calls(
    sim: Simulator, ant: anthropic.AsyncAnthropic, stream: bool
) -> None:
    sim.script(Turn.tool_calls(("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"})))
    kw = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}
    if stream:
        async with ant.messages.stream(**kw, tools=[AN_WEATHER]) as s:  # type: ignore[arg-type]
            msg = await s.get_final_message()
    else:
        msg = await ant.messages.create(**kw, tools=[AN_WEATHER])  # type: ignore[arg-type,call-overload]
    assert msg.stop_reason == "tool_use"
    blocks = [(b.name, b.input) for b in msg.content if b.type == "tool_use"]
    assert blocks == [("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"})]


async def test_no_tool_call_right_after_tool_results(
    sim: Simulator, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    history = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    r = await oai.chat.completions.create(model="m", messages=history, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content
    forced = await oai.chat.completions.create(
        model="m",
        messages=history,
        tools=[WEATHER],
        tool_choice="required",  # type: ignore[arg-type,list-item]
    )
    assert forced.choices[0].finish_reason == "tool_calls"
    an_history = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    m = await ant.messages.create(model="m", max_tokens=50, messages=an_history, tools=[AN_WEATHER])  # type: ignore[arg-type]
    assert m.stop_reason == "end_turn"
    m = await ant.messages.create(
        model="m",
        max_tokens=50,
        messages=an_history,
        tools=[AN_WEATHER],
        tool_choice={"type": "any"},  # type: ignore[arg-type]
    )
    assert m.stop_reason == "tool_use"


async def test_made_up_json_fits_pydantic_schemas(sim: Simulator, oai: openai.AsyncOpenAI) -> None:
    class Inner(pydantic.BaseModel):
        when: str = pydantic.Field(json_schema_extra={"format": "date-time"})
        n: int | None

    class Outer(pydantic.BaseModel):
        inner: Inner
        items: list[Inner]
        kind: str | int

    fmt = {"type": "json_schema", "json_schema": {"name": "o", "schema": Outer.model_json_schema()}}
    r = await oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        response_format=fmt,  # type: ignore[arg-type,list-item]
    )
    out = Outer.model_validate_json(r.choices[0].message.content or "")
    assert out.inner.when == "2024-01-01T00:00:00Z" and isinstance(out.inner.n, int)


async def test_scripted_answer_is_cut_by_max_tokens(
    sim: Simulator, oai: openai.AsyncOpenAI
) -> None:
    sim.script(Turn.text("a b c d e f g h i j k l m n o p"))
    r = await oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        max_tokens=2,  # type: ignore[list-item]
    )
    assert r.choices[0].finish_reason == "length" and r.usage and r.usage.completion_tokens == 2


async def test_a_refused_request_does_not_use_up_the_turn() -> None:
    async with Simulator(rpm=1, period=60) as sim:
        sim.inject(Fault.server_error())
        sim.script(Turn.text("for the admitted one"))
        async with openai.AsyncOpenAI(
            base_url=sim.openai_base_url, api_key="k", max_retries=0
        ) as oai:
            msgs = [{"role": "user", "content": "x"}]
            with pytest.raises(openai.InternalServerError):
                await oai.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
            r = await oai.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
            assert r.choices[0].message.content == "for the admitted one"
            sim.script(Turn.text("next"))
            with pytest.raises(openai.RateLimitError):  # over rpm: refused, turn kept
                await oai.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
            assert sim.pending_turns == 1 and sim.stats.scripted == 1
