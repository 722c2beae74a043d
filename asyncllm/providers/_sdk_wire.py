"""Translating what the official SDKs raise and return: errors, headers, JSON bodies.

Used by the SDK backends (``_sdk.py`` and the vendor modules). Every SDK or httpx2 error is
mapped here to the asyncllm tree, so nothing above ``providers/`` sees a vendor exception.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import orjson

from .._exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
)
from ._errors import LimitsParser, error_from_payload, error_from_status, transport_error

__all__ = ["header_dict", "json_object", "sdk_error", "split_body"]


def sdk_error(
    exc: BaseException,
    sdk: ModuleType,
    *,
    provider: str,
    model: str | None,
    parse_limits: LimitsParser,
) -> ProviderError:
    """Map an exception raised by an official SDK (or its httpx2 transport) to asyncllm."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        if status >= 300:
            return error_from_status(
                status,
                exc.body,
                exc.response.headers,
                provider=provider,
                model=model,
                parse_limits=parse_limits,
            )
        # Anthropic raises an error *event* inside a 200 stream as a status error.
        return error_from_payload(exc.body, provider=provider, model=model)
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderTimeout("timed out", provider=provider, model=model)
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        return ConnectionFailed(f"connection failed: {detail}", provider=provider, model=model)
    if isinstance(exc, sdk.APIResponseValidationError):
        return MalformedResponse(f"malformed response: {exc}", provider=provider, model=model)
    if isinstance(exc, sdk.APIError):
        # OpenAI raises an in-stream ``{"error": ...}`` chunk as a bare APIError.
        return error_from_payload(exc.body, provider=provider, model=model)
    base = getattr(sdk, "OpenAIError", None) or getattr(sdk, "AnthropicError", None)
    if base is not None and isinstance(exc, base):
        # Raised by the SDK itself before any request (credentials, client set-up).
        text = str(exc)
        low = text.lower()
        if "credential" in low or "api_key" in low or "authentication" in low:
            return AuthenticationFailed(f"SDK: {text}", provider=provider, model=model)
        return ProviderError(f"SDK: {type(exc).__name__}: {text}", provider=provider, model=model)
    return transport_error(exc, provider=provider, model=model)


def split_body(body: dict[str, Any], typed: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    """Split a wire body into the SDK's typed keyword arguments and ``extra_body``.

    Only the fields an SDK needs to route a call (model, messages, stream...) go through
    its typed arguments; the rest rides in ``extra_body`` untouched, so the bytes on the
    wire equal the native driver's.
    """
    kwargs = {k: body.pop(k) for k in typed if k in body}
    return kwargs, body or None


def header_dict(headers: Any) -> dict[str, str]:
    """httpx/httpx2 response headers as a plain dict with lower-case keys.

    ``httpx2.Headers.get`` decodes and scans every header on each call; the rate-limit
    parsers look up six or more, so one pass here is cheaper. Repeated headers are
    joined with ``", "``, exactly as ``get`` would return them.
    """
    return dict(headers.items())


def json_object(data: bytes, *, provider: str, model: str) -> dict[str, Any]:
    """A non-streamed response body decoded as the native backend decodes it.

    Raises:
        MalformedResponse: the body is not JSON, or not a JSON object.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(
            f"response is not JSON: {data[:200]!r}", provider=provider, model=model
        ) from exc
    if not isinstance(obj, dict):
        raise MalformedResponse(
            f"response is not a JSON object: {data[:200]!r}", provider=provider, model=model
        )
    return obj
