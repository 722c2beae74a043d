"""The Anthropic messages wire format: request bodies, stream events, responses.

Translation rules (shared by the native and SDK backends):

- ``request.system`` and every ``system``/``developer`` message go, in order, to the
  ``system`` field (joined by blank lines).
- ``max_tokens`` is required by Anthropic: the driver's default (4096) fills in.
- OpenAI-style tools (``{"type": "function", "function": {...}}``) become
  ``{"name", "description", "input_schema"}``; ``tool_choice`` ``auto``/``required``/
  ``none``/``{"function": {"name"}}`` become ``auto``/``any``/``none``/``tool``.
  Assistant ``tool_calls`` become ``tool_use`` blocks; ``tool`` messages become
  ``tool_result`` blocks (consecutive ones share one user turn).
- ``stop`` -> ``stop_sequences``; ``response_format`` ``json_schema`` ->
  ``output_config.format``; ``json_object`` (which Anthropic lacks) -> an instruction
  appended to the system prompt. ``seed`` has no Anthropic equivalent and is not sent.
- Stop reasons: ``end_turn``/``stop_sequence`` -> stop, ``max_tokens`` -> length,
  ``tool_use`` -> tool_calls, ``refusal`` -> content_filter.
- Tool-call arguments are delivered whole when their block closes, as compact JSON, so a
  streamed and a non-streamed answer carry byte-identical arguments.
- ``Usage.input_tokens`` counts every prompt token: Anthropic's ``input_tokens`` plus
  cache reads and writes (which are also reported separately).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from .._exceptions import MalformedResponse
from .._types import (
    DEFAULT_OUTPUT_CAP,
    ChatRequest,
    Chunk,
    FinishReason,
    Message,
    RateLimitInfo,
    Response,
    ToolCall,
    ToolCallDelta,
    Usage,
    output_cap,
)
from ._driver import parsed_response
from ._errors import error_from_payload
from ._native import NativeStream

__all__ = [
    "API_VERSION",
    "JSON_INSTRUCTION",
    "AnthropicStream",
    "EventSink",
    "build_body",
    "canonical_arguments",
    "finish_reason",
    "on_event",
    "parse_message",
    "usage_from",
]

DEFAULT_MAX_TOKENS = DEFAULT_OUTPUT_CAP
#: The ``anthropic-version`` both backends send: the one the installed ``anthropic`` SDK
#: sends (a test keeps them equal), set explicitly on the SDK client too, so the backends
#: never ask for different API versions.
API_VERSION = "2026-10-21"
JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(raw: str) -> FinishReason:
    """Anthropic's stop reason, normalised."""
    return _FINISH.get(raw, "other")


def usage_from(u: Mapping[str, Any]) -> Usage:
    """Usage from Anthropic's counts; ``input_tokens`` includes cache reads and writes."""
    read = u.get("cache_read_input_tokens") or 0
    write = u.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=(u.get("input_tokens") or 0) + read + write,
        output_tokens=u.get("output_tokens") or 0,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def _message_usage(u: Any) -> Usage | None:
    # Usage a server did not state is unknown (None), never zero (see Response.usage).
    if not isinstance(u, Mapping) or not isinstance(u.get("output_tokens"), int):
        return None
    return usage_from(u)


def canonical_arguments(raw: str | Mapping[str, Any] | None) -> str:
    """Tool input as compact JSON (streamed fragments and whole objects alike)."""
    if raw is None:
        return "{}"
    if isinstance(raw, str):
        if not raw.strip():
            return "{}"
        try:
            return orjson.dumps(orjson.loads(raw)).decode()
        except orjson.JSONDecodeError:
            return raw
    if not isinstance(raw, Mapping):  # not an object: passed on as sent, for the caller to judge
        return orjson.dumps(raw).decode()
    return orjson.dumps(dict(raw)).decode()


# -- request ---------------------------------------------------------------------------


def _part(p: Mapping[str, Any]) -> Mapping[str, Any]:
    if p.get("type") == "image_url":
        image = p.get("image_url")
        url = image.get("url", "") if isinstance(image, Mapping) else str(image or "")
        if url.startswith("data:") and ";base64," in url:
            media, _, data = url[5:].partition(";base64,")
            source = {"type": "base64", "media_type": media, "data": data}
            return {"type": "image", "source": source}
        return {"type": "image", "source": {"type": "url", "url": url}}
    return p


def _content(m: Message) -> str | list[Mapping[str, Any]]:
    if isinstance(m.content, str):
        return m.content
    return [_part(p) for p in m.content]


def _tool_use(tc: Mapping[str, Any]) -> dict[str, Any]:
    fn = tc.get("function") or {}
    args = fn.get("arguments") or "{}"
    try:
        parsed = orjson.loads(args) if isinstance(args, (str, bytes)) else dict(args)
    except orjson.JSONDecodeError:
        parsed = {}
    return {
        "type": "tool_use",
        "id": tc.get("id") or "",
        "name": fn.get("name") or "",
        "input": parsed,
    }


def _messages(request: ChatRequest) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = [request.system] if request.system else []
    out: list[dict[str, Any]] = []
    tool_turn: list[Any] | None = None  # the open user turn collecting tool results
    for m in request.messages:
        role = m.role
        if role in ("system", "developer"):
            system.append(m.text())
            continue
        if role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": _content(m),
            }
            if m.is_error:
                block["is_error"] = True
            if tool_turn is None:
                tool_turn = [block]
                out.append({"role": "user", "content": tool_turn})
            else:
                tool_turn.append(block)
            continue
        tool_turn = None
        if role == "assistant" and m.tool_calls:
            blocks: list[Any] = []
            content = _content(m)
            if isinstance(content, str):
                if content:
                    blocks.append({"type": "text", "text": content})
            else:
                blocks.extend(content)
            blocks.extend(_tool_use(tc) for tc in m.tool_calls)
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append(
                {"role": "assistant" if role == "assistant" else "user", "content": _content(m)}
            )
    return system, out


def _tool(t: Mapping[str, Any]) -> Mapping[str, Any]:
    fn = t.get("function")
    if t.get("type") == "function" and isinstance(fn, Mapping):
        tool: dict[str, Any] = {"name": fn.get("name", "")}
        if fn.get("description"):
            tool["description"] = fn["description"]
        tool["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        return tool
    return t  # already Anthropic-shaped (or a server tool): passed through


def _tool_choice(choice: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(choice, str):
        return {"type": {"required": "any", "auto": "auto", "none": "none"}.get(choice, choice)}
    fn = choice.get("function")
    if choice.get("type") == "function" and isinstance(fn, Mapping):
        return {"type": "tool", "name": fn.get("name", "")}
    return choice


def build_body(
    request: ChatRequest,
    model: str,
    *,
    stream: bool,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> dict[str, Any]:
    """The JSON body of a messages request (``provider_options`` merged in last)."""
    system, messages = _messages(request)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": output_cap(request, default_max_tokens),
        "messages": messages,
    }
    fmt = request.response_format
    if fmt is not None:
        kind = fmt.get("type")
        if kind == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema", spec) if isinstance(spec, Mapping) else spec
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        elif kind == "json_object":
            system.append(JSON_INSTRUCTION)
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if stream:
        body["stream"] = True
    if request.provider_options:
        body.update(request.provider_options)
    return body


# -- responses -------------------------------------------------------------------------


_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _usage_counts(u: Any) -> dict[str, Any]:
    # The counts an event states; one it leaves null keeps what an earlier event said.
    if not u:
        return {}
    out = {}
    for f in _USAGE_FIELDS:
        v = u.get(f)
        if v is not None:
            out[f] = v
    return out


class EventSink(Protocol):
    """What :func:`on_event` feeds: the native stream or the SDK backend's stream."""

    model: str
    _finished: bool
    _ended: bool
    _usage: dict[str, Any]
    # content-block index -> (tool ordinal, argument fragments)
    _tools: dict[Any, tuple[int, list[str]]]

    @property
    def provider(self) -> str: ...

    def _emit(self, chunk: Chunk) -> None: ...


def on_event(s: EventSink, obj: Mapping[str, Any], event: str | None = None) -> None:
    """Map one decoded Messages stream event to ``s``'s chunks (both backends use it).

    ``event`` is the SSE event name, where the caller has it.

    Raises:
        ProviderError: an ``error`` event.
    """
    kind = obj.get("type")
    if kind == "content_block_delta":
        delta = obj["delta"]
        dtype = delta.get("type")
        if dtype == "text_delta":
            text = delta.get("text")
            if text:
                s._emit(Chunk(text))
        elif dtype == "input_json_delta":
            entry = s._tools.get(obj.get("index", -1))
            if entry is not None:
                entry[1].append(delta.get("partial_json") or "")
        # thinking / signature / citation deltas are not answer text
    elif kind == "message_start":
        msg = obj.get("message") or {}
        s.model = msg.get("model") or s.model
        s._usage = _usage_counts(msg.get("usage"))
    elif kind == "content_block_start":
        block = obj.get("content_block") or {}
        btype = block.get("type")
        if btype == "text":
            if block.get("text"):
                s._emit(Chunk(block["text"]))
        elif btype == "tool_use":
            ordinal = len(s._tools)
            s._tools[obj.get("index", ordinal)] = (ordinal, [])
            start = ToolCallDelta(index=ordinal, id=block.get("id"), name=block.get("name"))
            s._emit(Chunk(tool_calls=(start,)))
    elif kind == "content_block_stop":
        entry = s._tools.get(obj.get("index", -1))
        if entry is not None:
            args = canonical_arguments("".join(entry[1]))
            s._emit(Chunk(tool_calls=(ToolCallDelta(index=entry[0], arguments=args),)))
    elif kind == "message_delta":
        s._usage.update(_usage_counts(obj.get("usage")))
        stop = (obj.get("delta") or {}).get("stop_reason")
        s._emit(
            Chunk(
                usage=usage_from(s._usage) if "output_tokens" in s._usage else None,
                finish_reason=finish_reason(stop) if stop else None,
                raw_finish_reason=stop,
            )
        )
    elif kind == "message_stop":
        s._finished = s._ended = True
    elif kind == "error" or event == "error":
        raise error_from_payload(obj, provider=s.provider, model=s.model)
    # "ping" and event types added later are ignored, as the API asks clients to.


class AnthropicStream(NativeStream):
    """Messages stream events (``message_start`` ... ``message_stop``)."""

    __slots__ = ("_tools", "_usage")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._usage: dict[str, Any] = {}
        # content-block index -> (tool ordinal, argument fragments)
        self._tools: dict[Any, tuple[int, list[str]]] = {}

    @property
    def provider(self) -> str:
        """The provider instance's name (error context)."""
        return self._endpoint.provider

    def _on_event(self, event: str | None, data: bytes) -> None:
        on_event(self, orjson.loads(data), event)


def parse_message(
    obj: Mapping[str, Any],
) -> tuple[str, FinishReason | None, str | None, Usage | None, tuple[ToolCall, ...], str | None]:
    """``(text, finish_reason, raw_finish_reason, usage, tool_calls, model)`` of a message.

    Raises:
        KeyError, TypeError: the object is not a message (mapped by the caller).
    """
    texts: list[str] = []
    tools: list[ToolCall] = []
    for block in obj["content"]:
        btype = block.get("type")
        if btype == "text":
            texts.append(block.get("text") or "")
        elif btype == "tool_use":
            tools.append(
                ToolCall(
                    id=block.get("id") or "",
                    name=block.get("name") or "",
                    arguments=canonical_arguments(block.get("input")),
                )
            )
    stop = obj.get("stop_reason")
    return (
        "".join(texts),
        finish_reason(stop) if stop else None,
        stop,
        _message_usage(obj.get("usage")),
        tuple(tools),
        obj.get("model"),
    )


def message_response(
    obj: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    started: float,
    rate_limits: RateLimitInfo | None,
) -> Response:
    """A :class:`Response` from a decoded Anthropic message (both backends use it)."""
    if obj.get("type") == "error":
        raise error_from_payload(obj, provider=provider, model=model)
    try:
        parsed = parse_message(obj)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedResponse(
            f"not a message: {type(exc).__name__}: {exc}", provider=provider, model=model
        ) from exc
    return parsed_response(
        parsed, provider=provider, model=model, started=started, rate_limits=rate_limits
    )
