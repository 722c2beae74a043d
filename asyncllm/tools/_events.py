"""Typed stream events: text deltas and whole tool calls, alike for every provider.

OpenAI-format streams send tool-call arguments in fragments; Anthropic streams (as
asyncllm maps them) send them whole when the call's block closes. :func:`stream_events`
folds either into the same sequence: a :class:`ToolCallStarted` when a call's name is
known, a :class:`ToolCallReady` with the complete call (arguments as compact JSON, and
validated when typed tools are given) once the model finished, then one
:class:`StreamFinished`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from .._types import Chunk, FinishReason, ToolCall, Usage
from ._tool import Tool

__all__ = [
    "StreamEvent",
    "StreamFinished",
    "TextDelta",
    "ToolCallReady",
    "ToolCallStarted",
    "stream_events",
]


@dataclass(slots=True, frozen=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(slots=True, frozen=True)
class ToolCallStarted:
    """The model started a tool call (its arguments are still coming)."""

    index: int
    id: str
    name: str


@dataclass(slots=True, frozen=True)
class ToolCallReady:
    """A complete tool call: ``call.arguments`` is compact JSON; with typed tools,
    ``call.parsed`` holds the validated arguments (or ``call.error`` says why not)."""

    index: int
    call: ToolCall


@dataclass(slots=True, frozen=True)
class StreamFinished:
    """The stream ended: why, and the usage when the provider reported it."""

    finish_reason: FinishReason | None
    usage: Usage | None


StreamEvent: TypeAlias = TextDelta | ToolCallStarted | ToolCallReady | StreamFinished


def _compact(arguments: str) -> str:
    if not arguments.strip():
        return "{}"
    try:
        return json.dumps(json.loads(arguments), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return arguments  # not JSON: validation reports it


async def stream_events(
    chunks: AsyncIterable[Chunk], tools: Iterable[Tool | Any] = ()
) -> AsyncIterator[StreamEvent]:
    """Typed events from a stream of chunks (``client.stream(...)`` or a provider stream).

    Args:
        chunks: The stream to read (read to its end, or as far as the caller goes).
        tools: Typed tools to validate each call's arguments against.
    """
    from ._run import _index

    index = _index(tools)
    calls: dict[int, list[Any]] = {}  # index -> [id, name, [fragments], started]
    finish: FinishReason | None = None
    usage: Usage | None = None
    ready = False

    def ready_events() -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for i, (cid, name, parts, _) in sorted(calls.items()):
            call = ToolCall(cid or "", name or "", _compact("".join(parts)))
            tool = index.get(call.name)
            if index:
                call = (
                    tool.check(call)
                    if tool is not None
                    else ToolCall(
                        call.id, call.name, call.arguments, error=f"unknown tool {call.name!r}"
                    )
                )
            out.append(ToolCallReady(i, call))
        return out

    async for chunk in chunks:
        if chunk.text:
            yield TextDelta(chunk.text)
        for d in chunk.tool_calls:
            slot = calls.setdefault(d.index, [None, None, [], False])
            if d.id:
                slot[0] = d.id
            if d.name:
                slot[1] = d.name
            if d.arguments:
                slot[2].append(d.arguments)
            if not slot[3] and slot[0] and slot[1]:
                slot[3] = True
                yield ToolCallStarted(d.index, slot[0], slot[1])
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.finish_reason is not None:
            finish = chunk.finish_reason
            if not ready:
                ready = True
                for event in ready_events():
                    yield event
    if not ready:
        for event in ready_events():
            yield event
    yield StreamFinished(finish, usage)
