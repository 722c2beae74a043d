"""Running tool calls (concurrently, each under a timeout) and the small agent loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import anyio
import pydantic
import pydantic_core

from .._exceptions import InvalidRequestError, MaxTurnsExceeded
from .._messages import coerce_messages
from .._types import Message, Response, ToolCall
from ._tool import Tool


class Completes(Protocol):
    """What the agent loop needs of a client: :meth:`asyncllm.Client.complete`.

    (A protocol rather than ``Client`` itself: ``tools`` sits below the client, which
    turns typed tools into requests, so it must not import it.)
    """

    async def complete(self, messages: object, **params: Any) -> Response: ...


__all__ = ["AgentRun", "run_agent", "run_tools", "tool_result"]

#: Seconds one tool call may run before it is cancelled and reported as timed out.
DEFAULT_TOOL_TIMEOUT = 60.0


def tool_result(call: ToolCall | str, content: Any, *, is_error: bool = False) -> Message:
    """The ``tool`` message answering ``call`` (works for every provider format).

    Args:
        call: The :class:`~asyncllm.ToolCall` (or its id) this answers.
        content: The result: a string as is; anything else (pydantic models, dicts,
            lists, numbers) as JSON.
        is_error: The tool failed: the message is marked ``is_error`` (Anthropic's wire
            sends it as such) and its content prefixed with ``Error:`` (OpenAI's wire has
            no such mark, so the text says it).
    """
    call_id = call.id if isinstance(call, ToolCall) else call
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("tool_result needs the tool call (or its non-empty id)")
    text = content if isinstance(content, str) else _json(content)
    if is_error and not text.startswith("Error:"):
        text = f"Error: {text}"
    return Message(role="tool", content=text, tool_call_id=call_id, is_error=is_error)


def _json(value: Any) -> str:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    return pydantic_core.to_json(value, fallback=str).decode()


def _index(tools: Iterable[Tool | Any]) -> dict[str, Tool]:
    out: dict[str, Tool] = {}
    for t in tools:
        tool = t if isinstance(t, Tool) else Tool.from_function(t)
        if tool.name in out:
            raise InvalidRequestError(f"two tools are named {tool.name!r}")
        out[tool.name] = tool
    return out


async def _run_one(tool: Tool | None, call: ToolCall, limit: float | None) -> Message:
    if tool is None:
        return tool_result(call, call.error or f"unknown tool {call.name!r}", is_error=True)
    if call.parsed is not None and isinstance(call.parsed, tool.args_model):
        args = call.parsed
    else:
        try:
            args = tool.validate(call.arguments)
        except pydantic.ValidationError as exc:
            from ._tool import validation_text

            return tool_result(call, f"invalid arguments: {validation_text(exc)}", is_error=True)
    try:
        with anyio.move_on_after(limit) as scope:
            result = await tool.call(args)
    except Exception as exc:  # returned to the model: it may fix its call or give up
        return tool_result(call, f"{type(exc).__name__}: {exc}", is_error=True)
    if scope.cancelled_caught:
        return tool_result(call, f"the tool timed out after {limit:g}s", is_error=True)
    return tool_result(call, result)


async def run_tools(
    calls: Sequence[ToolCall] | Response,
    tools: Iterable[Tool | Any],
    *,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT,  # noqa: ASYNC109 - a per-call limit
) -> list[Message]:
    """Run tool calls concurrently and return their ``tool`` messages, in call order.

    Each call runs in one task group (leaving early, or a cancelled caller, cancels them
    all and waits for them), under its own ``timeout``. A failure is returned to the model
    as an ``Error: ...`` tool result, never raised: an unknown tool, arguments that do not
    validate, an exception from the function, a timeout.

    Args:
        calls: The tool calls (or a response, for its ``tool_calls``).
        tools: The tools that may be called (:class:`Tool` objects or plain functions).
        timeout: Seconds each call may run; ``None`` for no limit.
    """
    if isinstance(calls, Response):
        calls = calls.tool_calls
    if timeout is not None and not timeout > 0:
        raise InvalidRequestError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    index = _index(tools)
    results: list[Message | None] = [None] * len(calls)

    async def one(i: int, call: ToolCall) -> None:
        results[i] = await _run_one(index.get(call.name), call, timeout)

    async with anyio.create_task_group() as tg:
        for i, call in enumerate(calls):
            tg.start_soon(one, i, call)
    return [r for r in results if r is not None]


@dataclasses.dataclass(slots=True)
class AgentRun:
    """The outcome of :func:`run_agent`.

    Attributes:
        response: The final response (the model answered without calling a tool).
        messages: The whole conversation: the input, then every assistant turn and tool
            result, then the final answer.
        turns: Model calls made.
        responses: Every response, in order (each one was paid for).
    """

    response: Response
    messages: list[Message]
    turns: int
    responses: list[Response]

    @property
    def text(self) -> str:
        """The final answer's text."""
        return self.response.text

    @property
    def parsed(self) -> Any:
        """The final answer validated into ``response_format``, when one was given."""
        return self.response.parsed


async def run_agent(
    client: Completes,
    messages: object,
    tools: Sequence[Tool | Any],
    *,
    max_turns: int = 10,
    tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
    **params: Any,
) -> AgentRun:
    """Call the model, run the tools it asks for, and repeat until it answers.

    The common agent loop and nothing more: each turn is one ``client.complete`` (through
    the client's strategy, limits, budget and cache), then every tool call of that turn
    runs concurrently (:func:`run_tools`) and their results are appended. Cancelling the
    caller at any point cancels the model call or the running tools: nothing is left
    running.

    Args:
        client: The client to call.
        messages: The conversation so far (a prompt string, message dicts or messages).
        tools: The tools the model may call.
        max_turns: Model calls allowed; the loop raises :class:`~asyncllm.MaxTurnsExceeded`
            when the model still calls tools after that many.
        tool_timeout: Seconds each tool call may run (``None``: no limit).
        **params: Passed to every ``client.complete`` call (``model``, ``max_tokens``,
            ``response_format``, ``output_retries``, ``tool_choice``...).

    Raises:
        MaxTurnsExceeded: the model was still calling tools after ``max_turns`` calls.
    """
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise InvalidRequestError(f"max_turns must be an int >= 1, got {max_turns!r}")
    if "tools" in params:
        raise InvalidRequestError("pass the tools as run_agent's tools argument")
    index = _index(tools)
    specs = list(index.values())
    history: list[Message] = list(coerce_messages(messages))
    responses: list[Response] = []
    response: Response | None = None
    for turn in range(1, max_turns + 1):
        response = await client.complete(history, tools=specs, **params)
        responses.append(response)
        history.append(response.to_message())
        if not response.tool_calls:
            return AgentRun(response, history, turn, responses)
        history.extend(await run_tools(response.tool_calls, specs, timeout=tool_timeout))
    raise MaxTurnsExceeded(max_turns, history, response)
