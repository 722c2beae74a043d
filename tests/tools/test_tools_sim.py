"""Typed tools against the simulator: both wire formats, both backends, streamed and not."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.lowlevel
import pydantic
import pytest
from _tooltest import CASES, make_provider

from asyncllm import Client, MaxTurnsExceeded, Message
from asyncllm.testing import Simulator, Turn
from asyncllm.tools import (
    StreamFinished,
    TextDelta,
    Tool,
    ToolCallReady,
    ToolCallStarted,
    run_agent,
    run_tools,
    stream_events,
)


class Weather(pydantic.BaseModel):
    """Weather in a city."""

    city: str
    days: int = 1


async def get_weather(city: str, days: int = 1) -> dict[str, Any]:
    """Get the forecast.

    Args:
        city: City name.
        days: Days ahead.
    """
    await anyio.lowlevel.checkpoint()
    return {"city": city, "days": days, "sky": "clear"}


def get_time(tz: str) -> str:
    """Current time in a time zone (a sync tool: runs in a worker thread)."""
    return f"12:00 {tz}"


TOOLS = [Tool.from_function(get_weather), Tool.from_function(get_time)]


async def _ask(client: Client, stream: bool, messages: Any, **params: Any) -> Any:
    if not stream:
        return await client.complete(messages, **params)
    async with client.stream(messages, **params) as s:
        async for _ in s:
            pass
    return s.response


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_unscripted_call_is_validated(client: Client, stream: bool, body: Any) -> None:
    r = await _ask(client, stream, "weather?", tools=TOOLS)
    assert r.finish_reason == "tool_calls"
    (call,) = r.tool_calls
    assert call.name == "get_weather" and call.error is None
    assert isinstance(call.parsed, TOOLS[0].args_model)
    assert call.parsed.model_dump() == call.arguments_dict()
    sent = body()
    names = [t.get("name") or t["function"]["name"] for t in sent["tools"]]
    assert names == ["get_weather", "get_time"]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_parallel_scripted_calls_and_bad_arguments(
    client: Client, sim: Simulator, stream: bool
) -> None:
    sim.script(
        Turn.tool_calls(
            ("get_weather", {"city": "Oslo", "days": 2}),
            ("get_time", {"tz": "CET"}),
            ("get_weather", {"days": "soon"}),
            ("launch_rocket", {}),
        )
    )
    r = await _ask(client, stream, "go", tools=TOOLS)
    assert [c.name for c in r.tool_calls] == [
        "get_weather",
        "get_time",
        "get_weather",
        "launch_rocket",
    ]
    ok, t, bad, unknown = r.tool_calls
    assert ok.parsed.city == "Oslo" and ok.parsed.days == 2 and ok.error is None
    assert t.parsed.tz == "CET"
    assert bad.parsed is None and "city" in (bad.error or "") and "days" in (bad.error or "")
    assert unknown.parsed is None and "unknown tool 'launch_rocket'" in (unknown.error or "")
    assert len({c.id for c in r.tool_calls}) == 4
    results = await run_tools(r, TOOLS)
    assert [m.tool_call_id for m in results] == [c.id for c in r.tool_calls]
    assert results[0].content == '{"city":"Oslo","days":2,"sky":"clear"}'
    assert results[1].content == "12:00 CET"
    assert results[2].content.startswith("Error: invalid arguments")
    assert results[3].content.startswith("Error: unknown tool")


async def test_stream_events_are_identical_for_every_format_and_backend(
    sim: Simulator,
) -> None:
    seen = []
    for case in CASES:
        sim.script(Turn.tool_calls(("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "UTC"})))
        provider = make_provider(sim, *case)
        async with (
            Client(provider, log=False, metrics=False) as c,
            c.stream("go", tools=TOOLS) as s,
        ):
            events = [e async for e in stream_events(s, TOOLS)]
        # ids differ by vendor (call_... / toolu_...): compare everything else
        seen.append(
            [
                (type(e).__name__, getattr(e, "index", None), _shape(e))
                for e in events
                if not isinstance(e, StreamFinished)
            ]
            + [("finish", events[-1].finish_reason)]  # type: ignore[union-attr]
        )
    assert all(s == seen[0] for s in seen), seen
    assert seen[0] == [
        ("ToolCallStarted", 0, "get_weather"),
        ("ToolCallStarted", 1, "get_time"),
        ("ToolCallReady", 0, ("get_weather", '{"city":"Oslo"}', "Oslo")),
        ("ToolCallReady", 1, ("get_time", '{"tz":"UTC"}', "UTC")),
        ("finish", "tool_calls"),
    ]


def _shape(e: Any) -> Any:
    if isinstance(e, ToolCallStarted):
        return e.name
    if isinstance(e, ToolCallReady):
        p = e.call.parsed
        return (e.call.name, e.call.arguments, getattr(p, "city", None) or getattr(p, "tz", None))
    return None


async def test_stream_events_text(client: Client) -> None:
    async with client.stream("hi") as s:
        events = [e async for e in stream_events(s)]
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert "".join(e.text for e in events[:-1]) == s.response.text  # type: ignore[union-attr]
    assert events[-1] == StreamFinished("stop", s.response.usage)  # type: ignore[union-attr]


async def test_agent_loop_ends_after_tool_results(client: Client, sim: Simulator) -> None:
    run = await run_agent(client, "weather in Oslo?", TOOLS, max_turns=4)
    assert run.turns == 2 and len(run.responses) == 2
    assert run.response.finish_reason == "stop" and run.text
    roles = [m.role for m in run.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert run.messages[2].tool_call_id == run.responses[0].tool_calls[0].id
    assert sim.stats.received == 2


async def test_agent_loop_scripted_turns_and_parallel_tools(client: Client, sim: Simulator) -> None:
    sim.script(
        Turn.tool_calls(("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"})),
        Turn.tool_call("get_weather", {"city": "Rome"}),
        Turn.text("Oslo is clear, Rome too."),
    )
    run = await run_agent(client, [{"role": "user", "content": "plan my trip"}], TOOLS)
    assert run.turns == 3 and run.text == "Oslo is clear, Rome too."
    assert [m.role for m in run.messages] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert sim.pending_turns == 0


async def test_max_turns(client: Client, sim: Simulator) -> None:
    sim.script(*[Turn.tool_call("get_time", {"tz": "UTC"})] * 3)
    with pytest.raises(MaxTurnsExceeded) as info:
        await run_agent(client, "loop", TOOLS, max_turns=2)
    assert info.value.max_turns == 2
    assert [m.role for m in info.value.messages][-1] == "tool"
    assert info.value.response is not None and info.value.response.tool_calls


async def test_tool_errors_and_timeouts_go_back_to_the_model() -> None:
    started = anyio.Event()
    finished = []

    async def slow(x: int) -> int:
        started.set()
        try:
            await anyio.sleep(10)
        finally:
            finished.append(x)
        return x

    def boom(x: int) -> int:
        raise RuntimeError(f"no {x}")

    from asyncllm import ToolCall

    calls = [ToolCall("a", "slow", '{"x": 1}'), ToolCall("b", "boom", '{"x": 2}')]
    out = await run_tools(calls, [slow, boom], timeout=0.05)
    assert out == [
        Message(
            role="tool",
            content="Error: the tool timed out after 0.05s",
            tool_call_id="a",
            is_error=True,
        ),
        Message(role="tool", content="Error: RuntimeError: no 2", tool_call_id="b", is_error=True),
    ]
    assert finished == [1]  # the timed-out call was cancelled, not abandoned


@pytest.mark.parametrize("where", ["model", "tools"])
async def test_cancelled_loop_leaves_nothing_running(
    sim: Simulator, case: tuple[str, str], where: str
) -> None:
    tool_started = anyio.Event()
    tool_cancelled = []

    async def wait_forever(x: int) -> str:
        tool_started.set()
        try:
            await anyio.sleep(3600)
        except BaseException:
            tool_cancelled.append(x)
            raise
        return "never"

    slow_sim = Simulator(output_tokens=4, latency=3600 if where == "model" else 0)
    async with slow_sim:
        provider = make_provider(slow_sim, *case)
        async with Client(provider, log=False, metrics=False) as c:
            before = _tasks()
            slow_sim.script(Turn.tool_calls(("wait_forever", {"x": 1}), ("wait_forever", {"x": 2})))
            with anyio.move_on_after(10) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(run_agent, c, "go", [wait_forever])
                    if where == "model":
                        await slow_sim.wait_for(lambda st: st.in_flight == 1)
                    else:
                        await tool_started.wait()
                        await anyio.sleep(0.01)
                    tg.cancel_scope.cancel()
            assert not scope.cancelled_caught
            if where == "model":
                await slow_sim.wait_for(lambda st: st.disconnected == 1 and st.in_flight == 0)
            else:
                assert sorted(tool_cancelled) == [1, 2]
            assert _tasks() <= before


def _tasks() -> set[asyncio.Task[Any]]:
    me = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not me and not t.done()}


async def test_plain_functions_are_typed_tools(client: Client, sim: Simulator) -> None:
    sim.script(Turn.tool_call("get_time", {"tz": "JST"}))
    r = await client.complete("time?", tools=[get_time])
    assert r.tool_calls[0].parsed.tz == "JST"


async def test_untyped_tools_still_pass_through(client: Client, sim: Simulator, body: Any) -> None:
    spec = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    sim.script(Turn.tool_call("f", {"a": 1}))
    r = await client.complete("x", tools=[spec])
    assert r.tool_calls[0].parsed is None and r.tool_calls[0].error is None
    assert r.tool_calls[0].arguments_dict() == {"a": 1}


async def test_fake_provider_scripts_tool_calls_and_json() -> None:
    from asyncllm.testing import FakeProvider, FakeReply

    fake = FakeProvider(
        replies=[
            FakeReply.call(("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "UTC"})),
            FakeReply.json({"city": "Oslo", "days": 3}),
        ]
    )
    async with Client(fake, log=False, metrics=False) as c:
        run = await run_agent(c, "trip", TOOLS, response_format=Weather)
    assert run.turns == 2 and run.parsed == Weather(city="Oslo", days=3)
    first = run.responses[0]
    assert first.finish_reason == "tool_calls"
    assert [c.id for c in first.tool_calls] == ["call_fake0_0", "call_fake0_1"]
    assert run.messages[2].content == '{"city":"Oslo","days":1,"sky":"clear"}'
    assert fake.calls[1].messages[-1].role == "tool"
    assert fake.open_streams == 0


async def test_a_tool_as_tool_choice_forces_that_tool(client: Client, body: Any) -> None:
    r = await client.complete("x", tools=TOOLS, tool_choice=TOOLS[1])
    assert [c.name for c in r.tool_calls] == ["get_time"]
    assert r.tool_calls[0].parsed is not None
    sent = body()["tool_choice"]
    assert sent in (
        {"type": "function", "function": {"name": "get_time"}},
        {"type": "tool", "name": "get_time"},
    )


async def test_tool_calls_given_as_objects_in_message_dicts(client: Client, sim: Simulator) -> None:
    sim.script(Turn.tool_call("get_time", {"tz": "UTC"}))
    first = await client.complete("time?", tools=TOOLS)
    history = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": "", "tool_calls": list(first.tool_calls)},
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "12:00 UTC"},
    ]
    final = await client.complete(history, tools=TOOLS)
    assert final.finish_reason == "stop" and not final.tool_calls


async def test_mixed_typed_and_dict_tools(client: Client, sim: Simulator) -> None:
    spec = {"type": "function", "function": {"name": "raw", "parameters": {"type": "object"}}}
    sim.script(Turn.tool_calls(("raw", {"a": 1}), ("get_time", {"tz": "UTC"}), ("nope", {})))
    r = await client.complete("x", tools=[spec, *TOOLS])
    raw, typed, unknown = r.tool_calls
    assert raw.parsed is None and raw.error is None
    assert typed.parsed.tz == "UTC"
    assert unknown.error is not None and "unknown tool 'nope'" in unknown.error


def test_a_parameter_named_like_a_pydantic_namespace() -> None:
    def pick(model: str, model_name: str = "x") -> str:
        """Pick a model."""
        return model

    t = Tool.from_function(pick)
    assert set(t.parameters["properties"]) == {"model", "model_name"}
