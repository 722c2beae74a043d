"""One batch input line, parsed: a :class:`BatchItem` to send, or a :class:`LineError` to record.

Three line shapes are read (each one JSON object on one line):

* **OpenAI Batch API**: ``{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
  "body": {"model": ..., "messages": [...], ...}}``. ``url`` may also be ``/v1/messages``,
  in which case ``body`` is read as Anthropic Messages parameters.
* **Anthropic Message Batches**: ``{"custom_id": "a", "params": {"model": ..., "max_tokens":
  ..., "messages": [...], ...}}``.
* **Simple**: ``{"custom_id" | "id": "a", "prompt": "..." | "messages": [...], params...}``;
  without an id the line's custom_id is ``line-N``.

Security: nothing in a line can change where a request is sent or with which key. ``url``
only names the endpoint *kind* (chat completions or messages) and anything else is a line
error; there is no host, header or key field. A line's ``model`` is handled by a
:class:`ModelRule` and never creates a provider (see ``docs/batch.md``).

Parsing is pure (no I/O, no event loop), so other stages (a Ray Data map, a web handler)
can reuse it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import orjson

from .._build import REQUEST_PARAMS, build_request
from .._exceptions import BatchInputError, InvalidRequestError
from .._types import ChatRequest

__all__ = [
    "BatchInputError",
    "BatchItem",
    "Endpoint",
    "LineError",
    "LineFormat",
    "ModelRule",
    "parse_line",
]

#: Which wire shape a line (and so its output ``response.body``) uses.
Endpoint: TypeAlias = Literal["chat.completions", "messages"]
#: Which of the three input shapes a line was written in.
LineFormat: TypeAlias = Literal["openai", "anthropic", "simple"]

_URLS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/messages": "messages",
}

# Parameters a line may carry, per shape. Anything else is a line error naming the key:
# silently dropping `n` or `logprobs` would return something other than what was asked.
# A simple line takes the request parameters, except two that are the operator's, not the
# data's: provider_options (driver settings) and tags (budget and metrics grouping).
_SIMPLE_PARAMS = REQUEST_PARAMS - {"provider_options", "tags"}
_OPENAI_PARAMS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "metadata",
        "n",
        "stream",
    }
)
_ANTHROPIC_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "stream",
    }
)


@dataclass(slots=True, frozen=True)
class ModelRule:
    """What a line's ``model`` may do. It never selects a host or creates a provider.

    Attributes:
        policy: ``"match"``: the model must be one of ``allowed`` (the configured providers'
            models), else the line is an error; the request is then sent without a model
            override, so the configured providers answer in strategy order with their own
            models. ``"override"``: the model name is sent, as the model, to the configured
            providers (for several models behind one vendor). ``"ignore"``: dropped.
        allowed: The configured models (``"match"`` only).
    """

    policy: Literal["match", "override", "ignore"] = "ignore"
    allowed: frozenset[str] = frozenset()

    @classmethod
    def matching(cls, models: Collection[str]) -> ModelRule:
        """A ``"match"`` rule over ``models``."""
        return cls("match", frozenset(models))


@dataclass(slots=True, frozen=True)
class BatchItem:
    """One request of a batch.

    Attributes:
        custom_id: The line's id (``custom_id``, or the simple shape's ``id``, or ``line-N``).
        line: 1-based line number in the input.
        request: The request to send.
        endpoint: The wire shape of the answer's ``response.body``.
        format: Which input shape the line used.
        model: The model the line named (as written), if any.
    """

    custom_id: str
    line: int
    request: ChatRequest
    endpoint: Endpoint = "chat.completions"
    format: LineFormat = "simple"
    model: str | None = None


@dataclass(slots=True, frozen=True)
class LineError:
    """A line that cannot be sent; it becomes an error record and the batch goes on.

    Attributes:
        line: 1-based line number.
        custom_id: The line's id when it could be read, else ``None``.
        code: ``invalid_json``, ``invalid_line``, ``invalid_custom_id``, ``invalid_url``,
            ``invalid_method``, ``unknown_parameter``, ``invalid_request``,
            ``model_not_configured`` or ``duplicate_custom_id``.
        message: What is wrong, starting with ``line N:``.
    """

    line: int
    custom_id: str | None
    code: str
    message: str


class _Bad(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def strip_bom(line: bytes | str) -> bytes | str:
    """``line`` without a UTF-8 byte order mark (editors on Windows start files with one)."""
    if isinstance(line, bytes):
        return line[3:] if line.startswith(b"\xef\xbb\xbf") else line
    return line[1:] if line.startswith("\ufeff") else line


def parse_line(
    line: bytes | str | Mapping[str, Any], lineno: int, *, rule: ModelRule | None = None
) -> BatchItem | LineError | None:
    """Parse one input line (or an already-decoded JSON object).

    Args:
        line: The raw line (JSON) or a decoded mapping.
        lineno: Its 1-based line number, used in messages and as ``line-N`` default id.
        rule: What the line's ``model`` may do (default: ignored, see :class:`ModelRule`).

    Returns:
        A :class:`BatchItem`, a :class:`LineError`, or ``None`` for a blank line (blank
        lines are not requests and get no record).
    """
    if isinstance(line, (bytes, str)):
        if lineno == 1:
            line = strip_bom(line)
        if not line.strip():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return LineError(lineno, None, "invalid_json", f"line {lineno}: not JSON ({exc})")
    else:
        obj = line
    if not isinstance(obj, Mapping):
        return LineError(
            lineno, None, "invalid_line", f"line {lineno}: not a JSON object ({type(obj).__name__})"
        )
    custom_id: str | None = None
    try:
        custom_id = _custom_id(obj, lineno)
        return _parse(obj, custom_id, lineno, rule or _IGNORE)
    except _Bad as exc:
        return LineError(lineno, custom_id, exc.code, f"line {lineno}: {exc.message}")


_IGNORE = ModelRule()


def custom_id_of(obj: object, lineno: int) -> str | None:
    """The custom_id a decoded line stands for, or ``None`` when it has no valid one."""
    if not isinstance(obj, Mapping):
        return None
    try:
        return _custom_id(obj, lineno)
    except _Bad:
        return None


def _custom_id(obj: Mapping[str, Any], lineno: int) -> str:
    # ``line-N`` for a simple line without an id; _Bad for an id of the wrong type.
    if "custom_id" in obj:
        cid = obj["custom_id"]
        if not isinstance(cid, str) or not cid:
            raise _Bad("invalid_custom_id", "custom_id must be a non-empty string")
        return cid
    if "id" in obj and ("prompt" in obj or "messages" in obj):
        cid = obj["id"]
        if isinstance(cid, int) and not isinstance(cid, bool):
            return str(cid)
        if not isinstance(cid, str) or not cid:
            raise _Bad("invalid_custom_id", "id must be a non-empty string or an integer")
        return cid
    if "body" in obj or "params" in obj:
        raise _Bad("invalid_custom_id", "custom_id is required")
    return f"line-{lineno}"


def _parse(obj: Mapping[str, Any], cid: str, lineno: int, rule: ModelRule) -> BatchItem:
    if "body" in obj or "url" in obj or "method" in obj:
        extra = set(obj) - {"custom_id", "method", "url", "body"}
        if extra:
            raise _Bad("unknown_parameter", f"unknown key(s) {sorted(extra)} in an OpenAI line")
        method = obj.get("method", "POST")
        if method != "POST":
            raise _Bad("invalid_method", f"method must be POST, got {method!r}")
        url = obj.get("url")
        endpoint = _URLS.get(url) if isinstance(url, str) else None
        if endpoint is None:
            raise _Bad("invalid_url", f"url must be one of {sorted(_URLS)}, got {_short(url)}")
        body = obj.get("body")
        if not isinstance(body, Mapping):
            raise _Bad("invalid_request", "body must be a JSON object")
        if endpoint == "messages":
            return _anthropic(body, cid, lineno, rule, "openai")
        return _openai(body, cid, lineno, rule)
    if "params" in obj:
        extra = set(obj) - {"custom_id", "params"}
        if extra:
            raise _Bad("unknown_parameter", f"unknown key(s) {sorted(extra)} in an Anthropic line")
        params = obj["params"]
        if not isinstance(params, Mapping):
            raise _Bad("invalid_request", "params must be a JSON object")
        return _anthropic(params, cid, lineno, rule, "anthropic")
    return _simple(obj, cid, lineno, rule)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown(params: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise _Bad("unknown_parameter", f"unknown parameter(s) {sorted(unknown)}")


def _model(params: dict[str, Any], rule: ModelRule) -> str | None:
    model = params.pop("model", None)
    if model is None:
        return None
    if not isinstance(model, str) or not model:
        raise _Bad("invalid_request", "model must be a non-empty string")
    if rule.policy == "match" and model not in rule.allowed:
        raise _Bad(
            "model_not_configured",
            f"model {_short(model)} is not one of the configured models {sorted(rule.allowed)}",
        )
    if rule.policy == "override":
        params["model"] = model
    return model


def _build(messages: object, params: Mapping[str, Any]) -> ChatRequest:
    try:
        return build_request(messages, params)
    except InvalidRequestError as exc:
        raise _Bad("invalid_request", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _Bad("invalid_request", str(exc)) from None


def _no_stream(params: dict[str, Any]) -> None:
    if params.pop("stream", False) not in (False, None):
        raise _Bad("invalid_request", "stream must be false in a batch")


def _simple(obj: Mapping[str, Any], cid: str, lineno: int, rule: ModelRule) -> BatchItem:
    params = {k: v for k, v in obj.items() if k not in ("custom_id", "id", "prompt", "messages")}
    _unknown(params, _SIMPLE_PARAMS)
    if "prompt" in obj and "messages" in obj:
        raise _Bad("invalid_request", "give 'prompt' or 'messages', not both")
    if "prompt" in obj:
        messages = obj["prompt"]
        if not isinstance(messages, str):
            raise _Bad("invalid_request", "prompt must be a string")
    elif "messages" in obj:
        messages = obj["messages"]
    else:
        raise _Bad("invalid_request", "needs 'prompt' or 'messages'")
    model = _model(params, rule)
    return BatchItem(cid, lineno, _build(messages, params), "chat.completions", "simple", model)


def _openai(body: Mapping[str, Any], cid: str, lineno: int, rule: ModelRule) -> BatchItem:
    _unknown(body, _OPENAI_PARAMS)
    params = dict(body)
    _no_stream(params)
    n = params.pop("n", 1)
    if n != 1:
        raise _Bad("invalid_request", f"n must be 1 (one answer per line), got {_short(n)}")
    if "max_completion_tokens" in params:
        mct = params.pop("max_completion_tokens")
        if params.get("max_tokens") is None:
            params["max_tokens"] = mct
    messages = params.pop("messages", None)
    if messages is None:
        raise _Bad("invalid_request", "body needs 'messages'")
    model = _model(params, rule)
    return BatchItem(cid, lineno, _build(messages, params), "chat.completions", "openai", model)


def _anthropic(
    params_in: Mapping[str, Any], cid: str, lineno: int, rule: ModelRule, fmt: LineFormat
) -> BatchItem:
    _unknown(params_in, _ANTHROPIC_PARAMS)
    params = dict(params_in)
    _no_stream(params)
    messages = params.pop("messages", None)
    if messages is None:
        raise _Bad("invalid_request", "params need 'messages'")
    system = params.get("system")
    if isinstance(system, list):
        # Anthropic's list of text blocks: join their text.
        if not all(isinstance(b, Mapping) and b.get("type") == "text" for b in system):
            raise _Bad("invalid_request", "system blocks must be {'type': 'text', ...}")
        params["system"] = "".join(str(b.get("text", "")) for b in system)
    if "stop_sequences" in params:
        params["stop"] = params.pop("stop_sequences")
    if params.get("tools") is not None:
        params["tools"] = _anthropic_tools(params["tools"])
    if params.get("tool_choice") is not None:
        params["tool_choice"] = _anthropic_tool_choice(params["tool_choice"])
    model = _model(params, rule)
    return BatchItem(cid, lineno, _build(messages, params), "messages", fmt, model)


def _anthropic_tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _Bad("invalid_request", "tools must be a list")
    out = []
    for t in tools:
        if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
            raise _Bad("invalid_request", "each tool needs a 'name'")
        fn: dict[str, Any] = {"name": t["name"], "parameters": t.get("input_schema", {})}
        if t.get("description"):
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    return out


def _anthropic_tool_choice(choice: object) -> str | dict[str, Any]:
    if not isinstance(choice, Mapping):
        raise _Bad("invalid_request", "tool_choice must be an object")
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _Bad("invalid_request", f"unsupported tool_choice {_short(choice)}")
