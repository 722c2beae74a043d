"""OpenAI chat completions wire format (``POST /v1/chat/completions``) for the simulator.

Shapes follow the ``openai`` SDK's models (``ChatCompletion``, ``ChatCompletionChunk``,
``CompletionUsage``) and the error body ``{"error": {"message", "type", "param", "code"}}``
that the SDK's ``_make_status_error`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ._sim_limits import LimitSnapshot, openai_headers
from ._sim_text import Finish, Plan, SimRequest, ToolSpec, text_of
from ._sim_wire import ErrorKind, StreamParts, WireError, opt_int, sse_data

__all__ = ["OpenAIWire"]

_FINISH: dict[Finish, str] = {
    "stop": "stop",
    "length": "length",
    "stop_sequence": "stop",
    "tool": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "stop",  # a refusal is told by ``message.refusal``, not the finish reason
}

# (type, code) of each error kind, as OpenAI sends them.
_ERRORS: dict[ErrorKind, tuple[str, str | None]] = {
    "invalid_request": ("invalid_request_error", None),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "not_found": ("invalid_request_error", "unknown_url"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "server": ("server_error", None),
    "unavailable": ("server_error", "service_unavailable"),
    "overloaded": ("server_error", "overloaded"),
    "context_window": ("invalid_request_error", "context_length_exceeded"),
}

_DONE = b"data: [DONE]\n\n"


def _first_tool(body: Mapping[str, Any]) -> ToolSpec | None:
    tools = body.get("tools")
    if not tools:
        return None
    if not isinstance(tools, list):
        raise WireError("tools: expected an array", "tools")
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if (
        isinstance(last, Mapping)
        and last.get("role") == "tool"
        and choice != "required"
        and not isinstance(choice, Mapping)
    ):
        # Right after tool results the model answers (unless a tool call is forced):
        # an agent loop against the simulator ends.
        return None
    wanted = None
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        wanted = fn.get("name") if isinstance(fn, Mapping) else None
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise WireError(f"tools[{i}].function.name: required", f"tools[{i}].function.name")
        if wanted is None or fn["name"] == wanted:
            params = fn.get("parameters")
            return ToolSpec(fn["name"], params if isinstance(params, Mapping) else {})
    raise WireError(f"tool_choice names an unknown function {wanted!r}", "tool_choice")


class OpenAIWire:
    """Parser and renderer of the OpenAI chat completions format."""

    name = "openai"
    request_id_header = "x-request-id"

    def parse(self, body: object) -> SimRequest:
        """Read a chat completions request body."""
        if not isinstance(body, Mapping):
            raise WireError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError("messages: expected a non-empty array", "messages")
        chars = 0
        parts: list[str] = []
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise WireError(f"messages[{i}]: expected an object with a role", "messages")
            text = text_of(m.get("content"))
            chars += len(text)
            parts.append(f"{m['role']}:{text}")
        max_tokens = opt_int(body, "max_completion_tokens")
        if max_tokens is None:
            max_tokens = opt_int(body, "max_tokens")
        stop = body.get("stop")
        if isinstance(stop, str):
            stops: tuple[str, ...] = (stop,)
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            if len(stop) > 4:
                raise WireError("stop: at most 4 sequences", "stop")
            stops = tuple(stop)
        elif stop is None:
            stops = ()
        else:
            raise WireError("stop: expected a string or an array of strings", "stop")
        opts = body.get("stream_options")
        rf = body.get("response_format")
        rf_type = rf.get("type") if isinstance(rf, Mapping) else None
        schema = None
        if rf_type == "json_schema":
            js = rf.get("json_schema") if isinstance(rf, Mapping) else None
            s = js.get("schema") if isinstance(js, Mapping) else None
            schema = s if isinstance(s, Mapping) else {}
        return SimRequest(
            model=model,
            prompt="\n".join(parts),
            chars=chars,
            n_messages=len(messages),
            max_tokens=max_tokens,
            stop=stops,
            stream=body.get("stream") is True,
            include_usage=isinstance(opts, Mapping) and opts.get("include_usage") is True,
            tool=_first_tool(body),
            json_schema=schema,
            json_mode=rf_type in ("json_object", "json_schema"),
            seed=opt_int(body, "seed", minimum=-(2**63)),
        )

    @staticmethod
    def _usage(plan: Plan) -> dict[str, Any]:
        return {
            "prompt_tokens": plan.input_tokens,
            "completion_tokens": plan.output_tokens,
            "total_tokens": plan.input_tokens + plan.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def render_json(self, req: SimRequest, plan: Plan, resp_id: str, created: int) -> bytes:
        """A ``chat.completion`` object."""
        message: dict[str, Any] = {"role": "assistant", "refusal": None, "annotations": []}
        if plan.tool is not None:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": plan.tool_id,
                    "type": "function",
                    "function": {"name": plan.tool.name, "arguments": plan.text},
                }
            ] + [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in plan.more_calls
            ]
        elif plan.finish == "refusal":
            message["content"] = None
            message["refusal"] = plan.text
        else:
            message["content"] = plan.text
        return orjson.dumps(
            {
                "id": resp_id,
                "object": "chat.completion",
                "created": created,
                "model": req.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": _FINISH[plan.finish],
                    }
                ],
                "usage": self._usage(plan),
                "service_tier": "default",
                "system_fingerprint": "fp_simulator",
            }
        )

    def render_stream(self, req: SimRequest, plan: Plan, resp_id: str, created: int) -> StreamParts:
        """``chat.completion.chunk`` events: role, one per piece, finish, usage, [DONE]."""
        usage_null = b',"usage":null' if req.include_usage else b""
        head = orjson.dumps(
            {
                "id": resp_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req.model,
                "service_tier": "default",
                "system_fingerprint": "fp_simulator",
            }
        )[:-1]  # open object: each chunk appends its own choices

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse_data(head + b',"choices":' + orjson.dumps([choice]) + usage_null + b"}")

        if plan.tool is not None:
            prologue = chunk({"role": "assistant", "content": None, "refusal": None})
            prologue += chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": plan.tool_id,
                            "type": "function",
                            "function": {"name": plan.tool.name, "arguments": ""},
                        }
                    ]
                }
            )
            content = [
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                for p in plan.pieces
            ]
            content += [
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": cid,
                                "type": "function",
                                "function": {"name": name, "arguments": args},
                            }
                        ]
                    }
                )
                for i, (cid, name, args) in enumerate(plan.more_calls, 1)
            ]
        else:
            prologue = chunk({"role": "assistant", "content": "", "refusal": None})
            key = "refusal" if plan.finish == "refusal" else "content"
            content = [chunk({key: p}) for p in plan.pieces]
        epilogue = chunk({}, _FINISH[plan.finish])
        if req.include_usage:
            epilogue += sse_data(
                head + b',"choices":[],"usage":' + orjson.dumps(self._usage(plan)) + b"}"
            )
        return StreamParts(prologue, content, epilogue + _DONE)

    def error_body(
        self,
        kind: ErrorKind,
        message: str,
        *,
        request_id: str,
        limit: str = "",
        param: str | None = None,
    ) -> bytes:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return orjson.dumps({"error": self._error(kind, message, limit, param)})

    @staticmethod
    def _error(
        kind: ErrorKind, message: str, limit: str = "", param: str | None = None
    ) -> dict[str, Any]:
        etype, code = _ERRORS[kind]
        if kind == "rate_limit" and limit:
            etype = limit
        if kind == "context_window":
            param = "messages"
        return {"message": message, "type": etype, "param": param, "code": code}

    def stream_error(self, kind: ErrorKind, message: str, *, request_id: str) -> bytes:
        """``data: {"error": {...}}`` (the SDK raises ``APIError`` on it)."""
        return sse_data(orjson.dumps({"error": self._error(kind, message)}))

    def malformed(self, resp_id: str) -> bytes:
        """A chunk cut off in the middle of its JSON."""
        return sse_data(b'{"id":"' + resp_id.encode() + b'","object":"chat.completion.chunk","ch')

    def limit_headers(self, snap: LimitSnapshot, wall_now: float) -> list[tuple[str, str]]:
        """``x-ratelimit-*``."""
        return openai_headers(snap)
