"""Answers of poor quality on demand: each finish reason, empty text, invalid JSON, tool
calls with arguments that fail their schema.

These are *answer* faults (status 200, a well-formed response), queued like any other
:class:`~asyncllm.testing.Fault` (``sim.inject(Fault.truncated())``); :func:`reshape`
rewrites the planned output of the request that takes one. Both wire formats render the
result, so the same fault reads alike through every driver:

=====================  =============================================  ==========================
fault                  OpenAI                                         Anthropic
=====================  =============================================  ==========================
``truncated``          ``finish_reason: "length"``                    ``stop_reason: "max_tokens"``
``refusal``            ``message.refusal`` (+ ``finish_reason: stop``) ``stop_reason: "refusal"``
``empty``              ``content: ""``, ``finish_reason: "stop"``     no text, ``end_turn``
``invalid_json``       text that is not JSON                          the same
``tool_call``          a ``tool_calls`` answer                        a ``tool_use`` answer
``invalid_tool_args``  tool arguments of the wrong types              the same
=====================  =============================================  ==========================

(``stop`` is an ordinary text answer, whatever the request asked for: the neutral case.)
"""

from __future__ import annotations

import orjson

from ._sim_text import Plan, SimRequest, ToolSpec, split_even

__all__ = ["ANSWER_FAULTS", "REFUSAL_TEXT", "reshape"]

#: Fault kinds that shape the answer instead of failing the request.
ANSWER_FAULTS = frozenset(
    {"stop", "truncated", "refusal", "empty", "invalid_json", "tool_call", "invalid_tool_args"}
)
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
#: The tool called when the request offered none.
SIM_TOOL = ToolSpec(
    "lookup",
    {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
)


def _bad_arguments(tool: ToolSpec) -> str:
    """An arguments object that fails ``tool``'s schema: every property of the wrong type
    (a string where anything else is wanted, a number where a string is)."""
    props = tool.schema.get("properties")
    if not isinstance(props, dict) or not props:
        return '["not", "an", "object"]'
    wrong = {
        name: 12345 if isinstance(spec, dict) and spec.get("type") == "string" else "wrong type"
        for name, spec in props.items()
    }
    return orjson.dumps(wrong).decode()


def reshape(kind: str, out: Plan, req: SimRequest, after: int | None, call_id: str) -> Plan:
    """``out`` rewritten as the answer fault ``kind`` says (``after``: content chunks kept
    by ``truncated``, default half of them)."""
    n = max(1, len(out.pieces))
    out.stop_sequence = None
    if kind == "truncated":
        keep = max(1, n // 2) if after is None else after
        out.pieces = out.pieces[:keep]
        out.finish = "length"
        return out
    if kind == "tool_call" and out.tool is not None:
        return out  # the request offered a tool: the planner called it already
    out.tool = None
    out.finish = "stop"
    if kind == "stop":
        out.pieces = out.pieces or ["done"]  # an ordinary text answer
    elif kind == "refusal":
        out.pieces = split_even(REFUSAL_TEXT, min(n, 4))
        out.finish = "refusal"
    elif kind == "empty":
        out.pieces = []
    elif kind == "invalid_json":
        out.pieces = split_even('{"answer": "unterminated', min(n, 4))
    else:  # a tool call: valid arguments, or arguments that are not a JSON object
        tool = req.tool or SIM_TOOL
        args = '{"query": "alpha"}' if kind == "tool_call" else _bad_arguments(tool)
        out.tool, out.tool_id, out.finish = tool, call_id, "tool"
        out.pieces = split_even(args, min(n, 4))
    return out
