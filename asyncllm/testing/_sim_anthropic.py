"""Anthropic messages wire format (``POST /v1/messages``) for the simulator.

Shapes follow the ``anthropic`` SDK's models (``Message``, ``RawMessageStreamEvent`` and
friends) and the error body ``{"type": "error", "error": {"type", "message"}, "request_id"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ._sim_limits import LimitSnapshot, anthropic_headers
from ._sim_text import Finish, Plan, SimRequest, ToolSpec, text_of
from ._sim_wire import ErrorKind, StreamParts, WireError, opt_int, sse_event

__all__ = ["AnthropicWire"]

_STOP: dict[Finish, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
}

_ERRORS: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "server": "api_error",
    "unavailable": "api_error",
    "overloaded": "overloaded_error",
    "context_window": "invalid_request_error",
}

_PING = sse_event(b"ping", b'{"type":"ping"}')
_BLOCK_STOP = sse_event(b"content_block_stop", b'{"type":"content_block_stop","index":0}')
_MESSAGE_STOP = sse_event(b"message_stop", b'{"type":"message_stop"}')


def _first_tool(body: Mapping[str, Any]) -> ToolSpec | None:
    tools = body.get("tools")
    if not tools:
        return None
    if not isinstance(tools, list):
        raise WireError("tools: Input should be a valid list", "tools")
    choice = body.get("tool_choice")
    wanted = None
    if isinstance(choice, Mapping):
        if choice.get("type") == "none":
            return None
        if choice.get("type") == "tool":
            wanted = choice.get("name")
    forced = isinstance(choice, Mapping) and choice.get("type") in ("any", "tool")
    if not forced and _answers_tools(body.get("messages")):
        # Right after tool results the model answers: an agent loop ends.
        return None
    for i, t in enumerate(tools):
        if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
            raise WireError(f"tools.{i}.name: Field required", f"tools.{i}.name")
        if wanted is None or t["name"] == wanted:
            schema = t.get("input_schema")
            return ToolSpec(t["name"], schema if isinstance(schema, Mapping) else {})
    raise WireError(f"tool_choice names an unknown tool {wanted!r}", "tool_choice")


def _block_stop(index: int) -> bytes:
    return sse_event(
        b"content_block_stop", orjson.dumps({"type": "content_block_stop", "index": index})
    )


def _tool_block(call_id: str, name: str, args: str) -> dict[str, Any]:
    try:
        value = orjson.loads(args)
    except orjson.JSONDecodeError:
        value = {}  # Anthropic always sends an object; a scripted bad string becomes {}
    return {"type": "tool_use", "id": call_id, "name": name, "input": value}


def _answers_tools(messages: object) -> bool:
    """Whether the last message is a user turn carrying ``tool_result`` blocks."""
    if not isinstance(messages, list) or not messages:
        return False
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "user":
        return False
    content = last.get("content")
    return isinstance(content, list) and any(
        isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content
    )


def _json_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema of structured outputs (``output_format`` or ``output_config.format``)."""
    fmt = body.get("output_format")
    cfg = body.get("output_config")
    if fmt is None and isinstance(cfg, Mapping):
        fmt = cfg.get("format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, Mapping) else {}
    return None


class AnthropicWire:
    """Parser and renderer of the Anthropic messages format."""

    name = "anthropic"
    request_id_header = "request-id"

    def parse(self, body: object) -> SimRequest:
        """Read a messages request body (``model``, ``max_tokens``, ``messages`` required)."""
        if not isinstance(body, Mapping):
            raise WireError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("model: Field required", "model")
        max_tokens = opt_int(body, "max_tokens")
        if max_tokens is None:
            raise WireError("max_tokens: Field required", "max_tokens")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError("messages: Field required (a non-empty list)", "messages")
        system = text_of(body.get("system"))
        chars = len(system)
        parts = [f"system:{system}"] if system else []
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, Mapping) else None
            if role not in ("user", "assistant"):
                raise WireError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            assert isinstance(m, Mapping)
            text = text_of(m.get("content"))
            chars += len(text)
            parts.append(f"{role}:{text}")
        stop = body.get("stop_sequences")
        if stop is not None and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)
        ):
            raise WireError("stop_sequences: Input should be a valid list of strings")
        schema = _json_schema(body)
        return SimRequest(
            model=model,
            prompt="\n".join(parts),
            chars=chars,
            n_messages=len(messages),
            max_tokens=max_tokens,
            stop=tuple(stop or ()),
            stream=body.get("stream") is True,
            include_usage=True,
            tool=_first_tool(body),
            json_schema=schema,
            json_mode=schema is not None,
        )

    @staticmethod
    def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def render_json(self, req: SimRequest, plan: Plan, resp_id: str, created: int) -> bytes:
        """A ``message`` object."""
        if plan.tool is not None:
            try:
                args = orjson.loads(plan.text)
            except orjson.JSONDecodeError:  # cut by max_tokens
                args = {}
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": plan.tool_id,
                "name": plan.tool.name,
                "input": args,
            }
        else:
            block = {"type": "text", "text": plan.text}
        return orjson.dumps(
            {
                "id": resp_id,
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": [block, *(_tool_block(*c) for c in plan.more_calls)],
                "stop_reason": _STOP[plan.finish],
                "stop_sequence": plan.stop_sequence,
                "usage": self._usage(plan.input_tokens, plan.output_tokens),
            }
        )

    def render_stream(self, req: SimRequest, plan: Plan, resp_id: str, created: int) -> StreamParts:
        """message_start, content_block_start, ping, deltas, block stop, message_delta/stop."""
        start = {
            "type": "message_start",
            "message": {
                "id": resp_id,
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": self._usage(plan.input_tokens, 1),
            },
        }
        if plan.tool is not None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": plan.tool_id,
                "name": plan.tool.name,
                "input": {},
            }
            delta_key, delta_type = "partial_json", "input_json_delta"
        else:
            block = {"type": "text", "text": ""}
            delta_key, delta_type = "text", "text_delta"
        prologue = (
            sse_event(b"message_start", orjson.dumps(start))
            + sse_event(
                b"content_block_start",
                orjson.dumps({"type": "content_block_start", "index": 0, "content_block": block}),
            )
            + _PING
        )
        content = [
            sse_event(
                b"content_block_delta",
                orjson.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": delta_type, delta_key: p},
                    }
                ),
            )
            for p in plan.pieces
        ]
        # Parallel tool calls: each further call is one block, its arguments in one delta.
        for i, (cid, name, args) in enumerate(plan.more_calls, 1):
            start_block = {
                "type": "content_block_start",
                "index": i,
                "content_block": {"type": "tool_use", "id": cid, "name": name, "input": {}},
            }
            args_delta = {
                "type": "content_block_delta",
                "index": i,
                "delta": {"type": "input_json_delta", "partial_json": args},
            }
            content.append(
                _block_stop(i - 1)
                + sse_event(b"content_block_start", orjson.dumps(start_block))
                + sse_event(b"content_block_delta", orjson.dumps(args_delta))
            )
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP[plan.finish], "stop_sequence": plan.stop_sequence},
            "usage": {"output_tokens": plan.output_tokens},
        }
        last_stop = _block_stop(len(plan.more_calls)) if plan.more_calls else _BLOCK_STOP
        epilogue = last_stop + sse_event(b"message_delta", orjson.dumps(delta)) + _MESSAGE_STOP
        return StreamParts(prologue, content, epilogue)

    def error_body(
        self,
        kind: ErrorKind,
        message: str,
        *,
        request_id: str,
        limit: str = "",
        param: str | None = None,
    ) -> bytes:
        """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
        return orjson.dumps(
            {
                "type": "error",
                "error": {"type": _ERRORS[kind], "message": message},
                "request_id": request_id,
            }
        )

    def stream_error(self, kind: ErrorKind, message: str, *, request_id: str) -> bytes:
        """``event: error`` (the SDK raises the matching ``APIStatusError`` on it)."""
        return sse_event(b"error", self.error_body(kind, message, request_id=request_id))

    def malformed(self, resp_id: str) -> bytes:
        """A content_block_delta cut off in the middle of its JSON."""
        return sse_event(b"content_block_delta", b'{"type":"content_block_delta","index":0,"del')

    def limit_headers(self, snap: LimitSnapshot, wall_now: float) -> list[tuple[str, str]]:
        """``anthropic-ratelimit-*``."""
        return anthropic_headers(snap, wall_now)
