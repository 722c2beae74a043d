"""Scripted turns: what the :class:`~asyncllm.testing.Simulator` answers, request by request.

By default the simulator makes up an answer from the request: text, JSON fitting the
requested schema, or a call of the first tool offered, except right after tool results
(then it answers in text, so an agent loop ends). ``sim.script(...)`` queues exact answers
instead; each request takes the next one (FIFO, shared by both wire formats), and once the
queue is empty the default behaviour resumes::

    sim.script(
        Turn.tool_calls(("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})),
        Turn.json({"city": "Paris", "temperature": 21}),
    )
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ._sim_text import Plan, SimRequest, ToolSpec, split_even

__all__ = ["ScriptQueue", "Turn", "plan_turn"]


@dataclass(slots=True, frozen=True)
class Turn:
    """One scripted answer. Build it with :meth:`text`, :meth:`json` or :meth:`tool_calls`.

    Attributes:
        content: The answer's text (also the JSON text of :meth:`json`).
        calls: Tool calls as ``(name, arguments JSON text)``; the answer then ends with
            the ``tool_calls`` / ``tool_use`` finish reason.
    """

    content: str = ""
    calls: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, text: str) -> Turn:
        """Answer ``text`` (streamed in up to ``output_tokens`` pieces)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        return cls(content=text)

    @classmethod
    def json(cls, value: Any) -> Turn:
        """Answer with ``value`` as JSON text (for ``response_format``); a string is sent
        as is, so ``Turn.json('{"oops"')`` scripts an invalid answer."""
        return cls(content=value if isinstance(value, str) else orjson.dumps(value).decode())

    @classmethod
    def tool_calls(cls, *calls: tuple[str, Mapping[str, Any] | str]) -> Turn:
        """Call these tools, in parallel: ``(name, arguments)`` each; arguments are a dict,
        or a string sent as is (to script arguments that do not validate)."""
        if not calls:
            raise ValueError("tool_calls needs at least one (name, arguments) pair")
        out = []
        for i, call in enumerate(calls):
            if not (isinstance(call, tuple) and len(call) == 2 and isinstance(call[0], str)):
                raise TypeError(f"calls[{i}] must be a (name, arguments) tuple")
            name, args = call
            out.append((name, args if isinstance(args, str) else orjson.dumps(dict(args)).decode()))
        return cls(calls=tuple(out))

    @classmethod
    def tool_call(cls, name: str, arguments: Mapping[str, Any] | str | None = None) -> Turn:
        """Call one tool (see :meth:`tool_calls`)."""
        return cls.tool_calls((name, arguments if arguments is not None else {}))


class ScriptQueue:
    """FIFO of scripted turns; each request takes the head, if any."""

    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: deque[Turn] = deque()

    def push(self, *turns: Turn) -> None:
        """Queue ``turns`` after the ones already queued."""
        for t in turns:
            if not isinstance(t, Turn):
                raise TypeError(f"expected a Turn, got {type(t).__name__}")
        self._q.extend(turns)

    def peek(self) -> Turn | None:
        """The turn the next admitted request will take, or ``None``."""
        return self._q[0] if self._q else None

    def pop(self) -> Turn | None:
        """The turn for the request arriving now, or ``None``."""
        return self._q.popleft() if self._q else None

    def clear(self) -> None:
        """Forget every queued turn."""
        self._q.clear()

    def __len__(self) -> int:
        return len(self._q)


def plan_turn(turn: Turn, req: SimRequest, *, output_tokens: int, call_id: str) -> Plan:
    """The output plan of a scripted turn (``max_tokens`` still cuts it)."""
    n = max(1, output_tokens)
    cap = req.max_tokens
    if turn.calls:
        name, args = turn.calls[0]
        calls: list[str] = split_even(args, n) if args else ["{}"]
        cut = calls if cap is None else calls[:cap]
        more = tuple((f"{call_id}_{i}", nm, a) for i, (nm, a) in enumerate(turn.calls[1:], 1))
        if len(cut) < len(calls):
            return Plan(cut, "length", req.input_tokens, tool=ToolSpec(name, {}), tool_id=call_id)
        return Plan(
            cut,
            "tool",
            req.input_tokens,
            tool=ToolSpec(name, {}),
            tool_id=call_id,
            more_calls=more,
        )
    pieces: list[str] = split_even(turn.content, n) if turn.content else []
    if cap is not None and cap < len(pieces):
        return Plan(pieces[:cap], "length", req.input_tokens)
    return Plan(pieces, "stop", req.input_tokens)
