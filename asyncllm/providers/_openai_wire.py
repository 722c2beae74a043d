"""The OpenAI chat-completions wire format: request bodies, stream chunks, responses.

Shared by the native OpenAI and OpenAI-compatible drivers and by the SDK backend (which
sends the same body), so every backend puts the same bytes on the wire and maps the
answer the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from .._exceptions import MalformedResponse
from .._types import (
    ChatRequest,
    Chunk,
    FinishReason,
    Message,
    Response,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._driver import parsed_response
from ._errors import error_from_payload
from ._native import NativeStream

__all__ = [
    "ChunkSink",
    "OpenAIStream",
    "build_body",
    "finish_reason",
    "on_chunk",
    "parse_completion",
    "usage_from",
]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}
#: ``raw_finish_reason`` of an answer that carried OpenAI's ``refusal`` instead of content
#: (Anthropic's own ``stop_reason`` for the same thing).
_REFUSAL = "refusal"


def finish_reason(raw: str) -> FinishReason:
    """OpenAI's finish reason, normalised."""
    return _FINISH.get(raw, "other")


def usage_from(prompt: int, completion: int, cached: int) -> Usage:
    """Usage from OpenAI's counts (``prompt_tokens`` already includes cached tokens)."""
    return Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)


def _usage(u: Any) -> Usage | None:
    # Usage the server did not state is unknown (None), never zero: a zero would make the
    # request free to budgets and refund its whole token reservation to the limiter.
    if not isinstance(u, Mapping) or not isinstance(u.get("completion_tokens"), int):
        return None
    details = u.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return usage_from(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0, cached or 0)


def _message(m: Message) -> dict[str, Any]:
    d: dict[str, Any] = {
        "role": m.role,
        "content": m.content if isinstance(m.content, str) else list(m.content),
    }
    if m.name is not None:
        d["name"] = m.name
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.tool_calls:
        d["tool_calls"] = list(m.tool_calls)
    return d


def build_body(
    request: ChatRequest, model: str, *, stream: bool, stream_usage: bool = True
) -> dict[str, Any]:
    """The JSON body of a chat-completions request.

    ``request.system`` becomes a leading system message; ``provider_options`` are merged
    in last (shallowly), so they can add or override any field.
    """
    messages = [_message(m) for m in request.messages]
    if request.system:
        messages.insert(0, {"role": "system", "content": request.system})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.tools:
        body["tools"] = list(request.tools)
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    if request.provider_options:
        body.update(request.provider_options)
    return body


def _tool_deltas(raw: list[Any]) -> tuple[ToolCallDelta, ...]:
    out = []
    for i, tc in enumerate(raw):
        fn = tc.get("function") or {}
        index = tc.get("index")
        out.append(
            ToolCallDelta(
                index=index if index is not None else i,
                id=tc.get("id"),
                name=fn.get("name"),
                arguments=fn.get("arguments") or "",
            )
        )
    return tuple(out)


class ChunkSink(Protocol):
    """What :func:`on_chunk` feeds: the native stream or the SDK backend's stream."""

    model: str
    _finished: bool

    @property
    def provider(self) -> str: ...

    def _emit(self, chunk: Chunk) -> None: ...


def on_chunk(s: ChunkSink, obj: Mapping[str, Any]) -> None:
    """Map one decoded chat-completion chunk to ``s``'s chunks (both backends use it).

    Raises:
        ProviderError: the chunk is an in-stream ``{"error": ...}`` object.
    """
    choices = obj.get("choices")
    usage = obj.get("usage")
    model = obj.get("model")
    if model:
        s.model = model
    if choices:
        c = choices[0]
        delta = c.get("delta")
        raw_finish = c.get("finish_reason")
        if delta:
            text = delta.get("content")
            tools = delta.get("tool_calls")
            if text and not tools and raw_finish is None:
                # The hot path: a plain text delta.
                s._emit(Chunk(text))
                text = None
            elif not text and not tools:
                refusal = delta.get("refusal")
                if refusal and isinstance(refusal, str):
                    # A refusal (structured outputs): its text, marked as a refusal.
                    s._emit(
                        Chunk(refusal, finish_reason="content_filter", raw_finish_reason=_REFUSAL)
                    )
        else:
            text = tools = None
        if text or tools or raw_finish:
            if raw_finish:
                # The answer is complete; the usage chunk and [DONE] normally follow,
                # but a server that closes cleanly here has not broken the stream. (The
                # SDK swallows [DONE]: a finish reason is the last thing it lets us see.)
                s._finished = True
            s._emit(
                Chunk(
                    text=text or "",
                    tool_calls=_tool_deltas(tools) if tools else (),
                    finish_reason=finish_reason(raw_finish) if raw_finish else None,
                    raw_finish_reason=raw_finish,
                )
            )
    elif obj.get("error"):
        raise error_from_payload(obj, provider=s.provider, model=s.model)
    if usage:
        known = _usage(usage)
        if known is not None:
            s._emit(Chunk(usage=known))


class OpenAIStream(NativeStream):
    """Chat-completion chunks (``data: {...}`` events ending with ``data: [DONE]``)."""

    __slots__ = ()

    @property
    def provider(self) -> str:
        """The provider instance's name (error context)."""
        return self._endpoint.provider

    def _on_event(self, event: str | None, data: bytes) -> None:
        if data[:6] == b"[DONE]":
            self._finished = self._ended = True
            return
        on_chunk(self, orjson.loads(data))


def parse_completion(
    obj: Mapping[str, Any],
) -> tuple[str, FinishReason | None, str | None, Usage | None, tuple[ToolCall, ...], str | None]:
    """``(text, finish_reason, raw_finish_reason, usage, tool_calls, model)`` of a completion.

    Raises:
        KeyError, TypeError, IndexError: the object is not a chat completion (the caller
            maps these to ``MalformedResponse``).
    """
    choice = obj["choices"][0]
    message = choice.get("message") or {}
    raw_finish = choice.get("finish_reason")
    tools = tuple(
        ToolCall(
            id=tc.get("id") or "",
            name=(tc.get("function") or {}).get("name") or "",
            arguments=(tc.get("function") or {}).get("arguments") or "",
        )
        for tc in message.get("tool_calls") or ()
    )
    usage = obj.get("usage")
    content = message.get("content") or ""
    refusal = message.get("refusal")
    if not content and refusal and isinstance(refusal, str):
        # A refusal (structured outputs) comes with finish_reason "stop": mark it as one.
        content, raw_finish = refusal, _REFUSAL
    return (
        content,
        finish_reason(raw_finish) if raw_finish else None,
        raw_finish,
        _usage(usage),
        tools,
        obj.get("model"),
    )


def completion_response(
    obj: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    started: float,
    rate_limits: Any,
) -> Response:
    """A :class:`Response` from a decoded chat completion (both backends use it)."""
    try:
        parsed = parse_completion(obj)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        if isinstance(obj, Mapping) and obj.get("error"):
            raise error_from_payload(obj, provider=provider, model=model) from None
        raise MalformedResponse(
            f"not a chat completion: {type(exc).__name__}: {exc}", provider=provider, model=model
        ) from exc
    return parsed_response(
        parsed, provider=provider, model=model, started=started, rate_limits=rate_limits
    )
