"""Typed request parameters: pydantic ``response_format`` and :class:`asyncllm.tools.Tool`.

``Client.complete`` and ``Client.stream`` turn them into the plain mappings a
:class:`~asyncllm.ChatRequest` carries (so the schemas are sent, and are part of the cache
key), and keep the originals here to validate the answer. pydantic is imported only when a
typed value is actually passed, so ``import asyncllm`` stays light.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from ._types import Response, ToolCall

__all__ = ["Typed", "split_typed"]


@dataclasses.dataclass(slots=True)
class Typed:
    """What to validate an answer against.

    Attributes:
        output: The pydantic model of ``response_format``, or ``None``.
        tools: Typed tools by name (untyped tool dicts are not in here).
        untyped: Names of the tools passed as plain dicts: their calls are left as they
            came (no ``parsed``, no ``error``).
    """

    output: Any = None
    tools: dict[str, Any] = dataclasses.field(default_factory=dict)
    untyped: frozenset[str] = frozenset()

    def apply(self, response: Response, *, attempts: int = 1) -> Response:
        """A copy of ``response`` with validated tool calls and structured output.

        A copy, not the response itself: a cache may share one response object between
        concurrent callers, each with its own tools and models.

        Raises:
            StructuredOutputError: the output does not fit ``output`` (only when the model
                answered with text: a tool-call turn has no output to validate).
        """
        out = dataclasses.replace(response)
        if self.tools and out.tool_calls:
            out.tool_calls = tuple(self._check(c) for c in out.tool_calls)
        if self.output is not None and not out.tool_calls:
            from .tools import parse_output

            out.parsed = parse_output(self.output, out, attempts=attempts)
        return out

    def _check(self, call: ToolCall) -> ToolCall:
        tool = self.tools.get(call.name)
        if tool is None and call.name in self.untyped:
            return call
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return dataclasses.replace(
                call, error=f"unknown tool {call.name!r} (known tools: {known})"
            )
        return tool.check(call)  # type: ignore[no-any-return]


def _is_model_class(value: object) -> bool:
    return isinstance(value, type) and callable(getattr(value, "model_json_schema", None))


def split_typed(params: Mapping[str, Any]) -> tuple[dict[str, Any], Typed | None]:
    """``params`` with typed values replaced by plain mappings, and what to validate."""
    if "tools" not in params and "response_format" not in params and "tool_choice" not in params:
        return dict(params), None  # the common case: nothing typed, nothing to look at
    fmt = params.get("response_format")
    tools = params.get("tools")
    typed_tools = (
        [
            t
            for t in tools
            if not isinstance(t, Mapping) and (callable(t) or callable(getattr(t, "to_spec", None)))
        ]
        if tools is not None and not isinstance(tools, (str, Mapping))
        else []
    )
    if not _is_model_class(fmt) and not typed_tools:
        choice = params.get("tool_choice")
        if callable(getattr(choice, "to_spec", None)):
            out = dict(params)
            out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}  # type: ignore[union-attr]
            return out, None
        return dict(params), None
    out = dict(params)
    typed = Typed()
    if _is_model_class(fmt):
        from .tools import cached_response_format

        typed.output = fmt
        # Shared, read-only: built once per model (nothing below mutates request values).
        out["response_format"] = cached_response_format(fmt)
    choice = params.get("tool_choice")
    if callable(getattr(choice, "to_spec", None)):
        # A Tool as tool_choice: force a call of that tool.
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}  # type: ignore[union-attr]
    if typed_tools:
        assert tools is not None
        from .tools import Tool

        # A Tool is used as is; a plain function becomes one (once per function).
        as_tools = {id(t): t if isinstance(t, Tool) else _as_tool(t) for t in typed_tools}
        out["tools"] = [as_tools[id(t)]._wire_spec() if id(t) in as_tools else t for t in tools]
        typed.tools = {t.name: t for t in as_tools.values()}
        if len(typed.tools) != len(as_tools):
            from ._exceptions import InvalidRequestError

            names = sorted(t.name for t in as_tools.values())
            raise InvalidRequestError(f"two tools share a name: {names}")
        typed.untyped = frozenset(_spec_name(t) for t in tools if id(t) not in as_tools)
    return out, typed


def _as_tool(fn: Any) -> Any:
    try:
        return _tool_for(fn)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
    from .tools import Tool

    return Tool.from_function(fn)


@functools.lru_cache(maxsize=512)
def _tool_for(fn: Any) -> Any:
    from .tools import Tool

    return Tool.from_function(fn)


def _spec_name(spec: object) -> str:
    """The name of a tool given as a dict (OpenAI or Anthropic shape)."""
    if not isinstance(spec, Mapping):
        return ""
    fn = spec.get("function")
    name = fn.get("name") if isinstance(fn, Mapping) else spec.get("name")
    return name if isinstance(name, str) else ""
