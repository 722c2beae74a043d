"""The simulator answers poor-quality answers on demand, and every driver reads them alike:
each finish reason, refusals, empty text, invalid JSON, tool calls with bad arguments."""

from __future__ import annotations

import pytest
from _drivertest import BACKENDS, VENDORS, consume, opened, req

from asyncllm.quality import assess
from asyncllm.testing import Fault, Simulator

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]

# fault -> (finish category, empty, invalid_json, tool calls, invalid tool arguments)
CASES = {
    "stop": (Fault.finish("stop"), "stop", False, False, 0, 0),
    "length": (Fault.finish("length"), "length", False, False, 0, 0),
    "truncated_after_1": (Fault.truncated(after=1), "length", False, False, 0, 0),
    "tool_calls": (Fault.finish("tool_calls"), "tool_calls", False, False, 1, 0),
    "content_filter": (Fault.finish("content_filter"), "content_filter", False, False, 0, 0),
    "refusal": (Fault.finish("refusal"), "refusal", False, False, 0, 0),
    "empty": (Fault.empty(), "stop", True, False, 0, 0),
    "invalid_json": (Fault.invalid_json(), "stop", False, True, 0, 0),
    "bad_tool_args": (Fault.invalid_tool_arguments(), "tool_calls", False, False, 1, 1),
}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("case", list(CASES))
async def test_answer_faults_read_alike_everywhere(
    case: str, vendor: str, backend: str, stream: bool
) -> None:
    fault, finish, empty, bad_json, calls, bad_args = CASES[case]
    async with Simulator(output_tokens=6) as sim, opened(vendor, backend, sim) as p:
        sim.inject(fault)
        request = req(
            "Answer in JSON.",
            response_format={"type": "json_object"} if case == "invalid_json" else None,
            tools=TOOLS if case in ("tool_calls", "bad_tool_args") else None,
        )
        response = await consume(p, request) if stream else await p.complete(request)
    if vendor == "anthropic" and case == "content_filter":
        finish = "refusal"  # Anthropic has no content filter: it refuses
    q = assess(request, response)
    assert (q.finish, q.empty, q.invalid_json, q.tool_calls, q.invalid_tool_arguments) == (
        finish,
        empty,
        bad_json,
        calls,
        bad_args,
    ), response
    assert q.output_tokens == response.usage.output_tokens
    if case == "refusal":
        assert response.text.startswith("I'm sorry")
        assert response.finish_reason == "content_filter"
    if case == "truncated_after_1":
        assert response.usage.output_tokens == 1


async def test_finish_rejects_an_unknown_reason() -> None:
    with pytest.raises(ValueError, match="reason must be one of"):
        Fault.finish("sleepy")


async def test_answer_faults_are_one_use_like_the_others() -> None:
    async with Simulator(output_tokens=4) as sim, opened("openai", "native", sim) as p:
        sim.inject(Fault.empty(), times=2)
        answers = [await p.complete(req("hi")) for _ in range(3)]
    assert [bool(a.text) for a in answers] == [False, False, True]
    assert sim.stats.faults == 2
