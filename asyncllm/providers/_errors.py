"""Translating provider failures into asyncllm's exception tree (shared by all backends).

Every backend funnels its failures through these functions, so a 429 from the native
OpenAI driver and a ``openai.RateLimitError`` from the SDK backend become the same
:class:`~asyncllm.RateLimited` with the same ``retry_after``. Messages are built from the
status code and the provider's own error text only (never from request headers), and
:class:`~asyncllm.ProviderError` redacts anything key-shaped on top.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import orjson

from .._exceptions import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamBroken,
)
from .._types import RateLimitInfo
from ._headers import Headers, retry_after

__all__ = [
    "LimitsParser",
    "broken",
    "error_from_payload",
    "error_from_status",
    "json_instead_of_stream",
    "transport_error",
]

#: ``parse(headers) -> RateLimitInfo | None`` for one provider family.
LimitsParser: TypeAlias = Callable[[Headers], RateLimitInfo | None]

_MAX_MESSAGE = 500

_CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded"})
_CONTEXT_PHRASES = (
    "prompt is too long",
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
)
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "content_filtered"})
_FILTER_PHRASES = ("content filter", "content_filter", "content policy", "content management")


def _error_fields(body: object) -> tuple[str, str | None, str | None]:
    """``(message, type, code)`` from an OpenAI- or Anthropic-shaped error body."""
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode("utf-8", "replace")
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return text.strip()[:_MAX_MESSAGE], None, None
    if isinstance(body, str):
        return body.strip()[:_MAX_MESSAGE], None, None
    if not isinstance(body, Mapping):
        return "", None, None
    if "error" not in body and "detail" in body:
        # FastAPI-style servers (LiteLLM proxy, vLLM, many mocks): {"detail": ...}.
        return _detail(body["detail"]), None, None
    err: Any = body.get("error", body)
    if isinstance(err, str):
        return err[:_MAX_MESSAGE], None, None
    if not isinstance(err, Mapping):
        return "", None, None
    message = err.get("message")
    etype = err.get("type")
    code = err.get("code")
    details = err.get("details")
    if code is None and isinstance(details, Mapping):
        code = details.get("error_code")
    return (
        str(message)[:_MAX_MESSAGE] if message is not None else "",
        str(etype) if etype is not None else None,
        str(code) if code is not None else None,
    )


def _detail(detail: object) -> str:
    """The message of a ``{"detail": ...}`` body: a string, a list of validation errors
    (``[{"loc": [...], "msg": ...}]``) or an object with a message."""
    if isinstance(detail, str):
        return detail.strip()[:_MAX_MESSAGE]
    if isinstance(detail, Mapping):
        inner = detail.get("message") or detail.get("msg") or detail.get("error")
        if isinstance(inner, (str, Mapping, list)):
            return _detail(inner)
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                msg = item.get("msg") or item.get("message")
                loc = item.get("loc")
                where = ".".join(str(x) for x in loc) if isinstance(loc, list) else ""
                parts.append(f"{where}: {msg}" if where and msg else str(msg or item))
            else:
                parts.append(str(item))
        return "; ".join(parts)[:_MAX_MESSAGE]
    return orjson.dumps(detail).decode("utf-8", "replace")[:_MAX_MESSAGE] if detail else ""


def _refine_bad_request(message: str, etype: str | None, code: str | None) -> type[BadRequest]:
    low = message.lower()
    if (code in _CONTEXT_CODES) or any(p in low for p in _CONTEXT_PHRASES):
        return ContextWindowExceeded
    if (code in _FILTER_CODES) or (etype in _FILTER_CODES):
        return ContentFiltered
    if any(p in low for p in _FILTER_PHRASES):
        return ContentFiltered
    return BadRequest


def error_from_status(
    status: int,
    body: object,
    headers: Headers,
    *,
    provider: str,
    model: str | None,
    parse_limits: LimitsParser,
) -> ProviderError:
    """The asyncllm error for an HTTP error response.

    Args:
        status: HTTP status code (>= 400).
        body: The response body (bytes, text or already-decoded JSON).
        headers: Response headers (for ``retry-after`` and rate-limit headers).
        provider: Provider instance name.
        model: Model asked for.
        parse_limits: The provider family's rate-limit header parser.
    """
    message, etype, code = _error_fields(body)
    text = f"{etype}: {message}" if etype and message else (message or etype or "no details")
    kw: dict[str, Any] = {"provider": provider, "model": model, "status_code": status}
    if status == 429:
        return RateLimited(
            f"rate limited: {text}",
            retry_after=retry_after(headers),
            rate_limits=parse_limits(headers),
            **kw,
        )
    if status == 529 or etype == "overloaded_error" or code == "overloaded":
        return Overloaded(f"overloaded: {text}", **kw)
    if status in (401, 403):
        return AuthenticationFailed(f"authentication failed: {text}", **kw)
    if status == 408:
        return ProviderTimeout(f"request timeout: {text}", **kw)
    if status >= 500:
        return ServerError(f"server error: {text}", **kw)
    if 400 <= status < 500:
        cls = _refine_bad_request(message, etype, code)
        return cls(f"bad request: {text}", **kw)
    return MalformedResponse(f"unexpected HTTP status {status}: {text}", **kw)


_PAYLOAD_TYPES: dict[str, type[ProviderError]] = {
    "rate_limit_error": RateLimited,
    "rate_limit_exceeded": RateLimited,
    "overloaded_error": Overloaded,
    "overloaded": Overloaded,
    "api_error": ServerError,
    "server_error": ServerError,
    "internal_server_error": ServerError,
    "timeout_error": ProviderTimeout,
    "authentication_error": AuthenticationFailed,
    "permission_error": AuthenticationFailed,
    "invalid_request_error": BadRequest,
    "not_found_error": BadRequest,
    "request_too_large": BadRequest,
}


def error_from_payload(body: object, *, provider: str, model: str | None) -> ProviderError:
    """The asyncllm error for an error *event* inside a 200 stream (no status code)."""
    message, etype, code = _error_fields(body)
    text = f"{etype}: {message}" if etype and message else (message or etype or "no details")
    # The code is the more specific of the two (OpenAI: type "server_error", code "overloaded").
    cls = _PAYLOAD_TYPES.get(code or "") or _PAYLOAD_TYPES.get(etype or "") or ServerError
    if cls is BadRequest:
        cls = _refine_bad_request(message, etype, code)
    # The HTTP status was 200: say so by leaving status_code empty, even for RateLimited.
    return cls(f"error event in stream: {text}", provider=provider, model=model, status_code=None)


def transport_error(exc: BaseException, *, provider: str, model: str | None) -> ProviderError:
    """Map a transport-level exception (aiohttp, httpx2, OS, JSON) to asyncllm.

    Timeouts become :class:`ProviderTimeout`; anything connection-shaped becomes
    :class:`ConnectionFailed`; undecodable payloads become :class:`MalformedResponse`.
    Library-specific classes are recognised by name so this module imports neither
    aiohttp nor httpx2.
    """
    if isinstance(exc, ProviderError):
        return exc
    names = {c.__name__ for c in type(exc).__mro__}
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or "TimeoutException" in names:
        return ProviderTimeout(f"timed out: {detail}", provider=provider, model=model)
    if "ClientError" in names or "HTTPError" in names or isinstance(exc, OSError):
        pass
    elif isinstance(exc, ValueError):  # JSON / UTF-8 decoding of the payload
        return MalformedResponse(f"malformed response: {detail}", provider=provider, model=model)
    if "ClientPayloadError" in names or "RemoteProtocolError" in names:
        return ConnectionFailed(f"connection lost: {detail}", provider=provider, model=model)
    return ConnectionFailed(f"connection failed: {detail}", provider=provider, model=model)


def broken(err: ProviderError, *, partial_text: str, chunks_received: int) -> ProviderError:
    """``err`` as a :class:`StreamBroken` when content was already delivered, else ``err``."""
    if chunks_received <= 0 or isinstance(err, StreamBroken):
        return err
    return StreamBroken(
        f"{type(err).__name__}: {err.message}",
        partial_text=partial_text,
        chunks_received=chunks_received,
        provider=err.provider,
        model=err.model,
        status_code=err.status_code,
    )


def json_instead_of_stream(data: bytes, *, provider: str, model: str | None) -> ProviderError:
    """The error for a stream request answered with a plain JSON body (status 2xx)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, Mapping) and obj.get("error"):
        return error_from_payload(obj, provider=provider, model=model)
    return MalformedResponse(
        f"expected an event stream, got JSON: {data[:200]!r}", provider=provider, model=model
    )
