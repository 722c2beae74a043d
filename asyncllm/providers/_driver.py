"""What the HTTP drivers share: backend selection, API keys, delegation, responses.

A driver (``OpenAIProvider``, ``AnthropicProvider``...) is a thin :class:`BaseProvider`
over one *backend*: the native wire client (aiohttp, the default) or the official SDK.
Both implement :class:`Backend`, and both are held to identical results by the tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from .._exceptions import ConfigurationError, register_secret
from .._types import Response
from ._base import BaseProvider

if TYPE_CHECKING:
    from .._types import ChatRequest, FinishReason, RateLimitInfo, ToolCall, Usage
    from ._base import ProviderStream
    from ._http import HttpResources

__all__ = [
    "Backend",
    "BackendName",
    "Driver",
    "ParsedAnswer",
    "parsed_response",
    "register_driver_secrets",
    "resolve_api_key",
]

# Header names whose values are credentials (compared lower-cased).
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie", "signature", "password")
# Attributes of official SDK clients (OpenAI, Azure OpenAI, Anthropic) that hold credentials.
_SDK_SECRET_ATTRS = ("api_key", "auth_token", "_azure_ad_token", "azure_ad_token")

BackendName: TypeAlias = Literal["native", "sdk"]

#: A decoded non-streamed answer, as the wire modules' parsers return it:
#: ``(text, finish_reason, raw_finish_reason, usage, tool_calls, model)``.
ParsedAnswer: TypeAlias = (
    "tuple[str, FinishReason | None, str | None, Usage | None, tuple[ToolCall, ...], str | None]"
)


class Backend(Protocol):
    """One way of talking to a provider."""

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources."""
        ...

    async def aclose(self) -> None:
        """Forget what :meth:`open` bound (the pools belong to the client)."""
        ...

    def stream(
        self, request: ChatRequest, model: str
    ) -> AbstractAsyncContextManager[ProviderStream]:
        """Open a token stream."""
        ...

    async def complete(self, request: ChatRequest, model: str) -> Response:
        """Run a request to completion."""
        ...


def resolve_api_key(
    api_key: str | None, env: str | None, *, provider: str, required: bool
) -> str | None:
    """``api_key``, else the environment variable ``env``.

    Raises:
        ConfigurationError: when a key is required and neither is set. The message names
            the environment variable, never a key.
    """
    key = api_key if api_key else (os.environ.get(env) if env else None)
    register_secret(key)
    if not key and required:
        where = f"set {env} or pass api_key=..." if env else "pass api_key=..."
        raise ConfigurationError(f"provider {provider!r} has no API key: {where}")
    return key or None


def register_driver_secrets(
    key: str | None, extra_headers: Mapping[str, str] | None, client: Any = None
) -> None:
    """Register every secret a driver is configured with, so errors and logs scrub them.

    The API key; the values of credential-like ``extra_headers`` (``Authorization``,
    ``api-key``, ``x-...-token``...); and the credentials a user-built SDK client holds
    (``api_key``, ``auth_token``, an Azure AD token, its auth headers).
    """
    register_secret(key)
    for name, value in (extra_headers or {}).items():
        if any(w in name.lower() for w in _SECRET_HEADER_WORDS):
            register_secret(value)
    if client is None:
        return
    for attr in _SDK_SECRET_ATTRS:
        register_secret(getattr(client, attr, None))
    try:
        auth = client.auth_headers
    except Exception:  # not an SDK client, or its auth needs an await
        auth = None
    if isinstance(auth, Mapping):
        for value in auth.values():
            register_secret(value)


def parsed_response(
    parsed: ParsedAnswer,
    *,
    provider: str,
    model: str,
    started: float,
    rate_limits: RateLimitInfo | None,
) -> Response:
    """A :class:`Response` from a parsed answer (every backend of every driver uses it).

    ``started`` is the ``time.perf_counter()`` reading taken before sending; a non-streamed
    answer's first token arrives with the whole of it, so both times are the latency.
    """
    text, finish, raw_finish, usage, tools, answered_by = parsed
    latency = time.perf_counter() - started
    return Response(
        text=text,
        finish_reason=finish,
        usage=usage,
        provider=provider,
        model=answered_by or model,
        latency=latency,
        time_to_first_token=latency,
        tool_calls=tools,
        raw_finish_reason=raw_finish,
        rate_limits=rate_limits,
    )


def check_backend(backend: str, provider: str) -> BackendName:
    """Validate a ``backend=`` option."""
    if backend not in ("native", "sdk"):
        raise ConfigurationError(
            f"provider {provider!r}: backend must be 'native' or 'sdk', got {backend!r}"
        )
    return "native" if backend == "native" else "sdk"


class Driver(BaseProvider):
    """A provider that delegates to a :class:`Backend`."""

    _backend: Backend
    backend: BackendName
    base_url: str

    def __repr__(self) -> str:
        # Never the key: name, model, endpoint and backend only.
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.default_model!r}, "
            f"base_url={self.base_url!r}, backend={self.backend!r})"
        )

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources."""
        await self._backend.open(http)

    async def aclose(self) -> None:
        """Release what :meth:`open` bound."""
        await self._backend.aclose()

    def stream(self, request: ChatRequest) -> AbstractAsyncContextManager[ProviderStream]:
        """Open a token stream for ``request`` (sent when the context is entered)."""
        return self._backend.stream(request, self.model_for(request))

    async def complete(self, request: ChatRequest) -> Response:
        """Run ``request`` to completion (the non-streaming endpoint on the native path)."""
        return await self._backend.complete(request, self.model_for(request))

    def statistics(self) -> dict[str, Any]:
        """Which backend and endpoint this driver uses."""
        return {"backend": self.backend, "base_url": self.base_url, "kind": self.kind}
