"""The Anthropic messages driver (native aiohttp backend by default, or the SDK)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._exceptions import ConfigurationError
from .._types import ChatRequest, RateLimitInfo, Response
from .._version import USER_AGENT
from ._anthropic_wire import (
    API_VERSION,
    DEFAULT_MAX_TOKENS,
    AnthropicStream,
    build_body,
    message_response,
)
from ._driver import (
    Backend,
    Driver,
    check_backend,
    register_driver_secrets,
    resolve_api_key,
)
from ._headers import anthropic_rate_limits
from ._native import Endpoint, NativeBackend

__all__ = ["AnthropicProvider", "message_response"]

DEFAULT_BASE_URL = "https://api.anthropic.com"


class NativeAnthropic(NativeBackend):
    """The Anthropic wire protocol over the pooled aiohttp session.

    Args:
        endpoint: The ``/v1/messages`` endpoint (headers and timeouts built once).
        default_max_tokens: ``max_tokens`` sent when the request sets none.
    """

    stream_type = AnthropicStream

    def __init__(self, endpoint: Endpoint, *, default_max_tokens: int) -> None:
        super().__init__(endpoint)
        self.default_max_tokens = default_max_tokens

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        return build_body(request, model, stream=stream, default_max_tokens=self.default_max_tokens)

    def _response(
        self, obj: Mapping[str, Any], model: str, started: float, limits: RateLimitInfo | None
    ) -> Response:
        return message_response(
            obj, provider=self.provider, model=model, started=started, rate_limits=limits
        )


class AnthropicProvider(Driver):
    """Anthropic's messages API.

    Args:
        name: Instance name.
        model: Default model.
        api_key: API key; default ``$ANTHROPIC_API_KEY``. Never logged or printed.
        base_url: API root; default ``$ANTHROPIC_BASE_URL`` or ``https://api.anthropic.com``.
        backend: ``"native"`` (aiohttp) or ``"sdk"`` (``anthropic.AsyncAnthropic`` over the
            client's shared httpx2 pool; for Bedrock/Vertex and custom auth).
        timeout: Read timeout in seconds (longest wait for the next byte).
        connect_timeout: Seconds to obtain a connection.
        extra_headers: Headers added to every request (``anthropic-beta``...).
        client: With ``backend="sdk"``: a ready ``AsyncAnthropic``-compatible client
            (``AsyncAnthropicBedrock``, ``AsyncAnthropicVertex``...); no key needed then.
        default_max_tokens: ``max_tokens`` sent when the request sets none (Anthropic
            requires one). Through a client, it is also what the limiter and the budget
            reserve for such a request (``output_cap``): the one number of its output.

    Attributes:
        default_max_tokens: As given.

    Raises:
        ConfigurationError: no API key, or an unknown backend.
    """

    kind = "anthropic"

    def __init__(
        self,
        *,
        name: str = "anthropic",
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        backend: str = "native",
        timeout: float | None = 600.0,
        connect_timeout: float | None = 10.0,
        extra_headers: Mapping[str, str] | None = None,
        client: Any = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        super().__init__(name, model=model)
        self.backend = check_backend(backend, name)
        url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        key = resolve_api_key(api_key, "ANTHROPIC_API_KEY", provider=name, required=client is None)
        if default_max_tokens < 1:
            raise ConfigurationError("default_max_tokens must be at least 1")
        self.default_max_tokens = default_max_tokens
        register_driver_secrets(key, extra_headers, client)
        self._backend: Backend
        if self.backend == "sdk":
            from ._anthropic_sdk import AnthropicSDK

            self._backend = AnthropicSDK(
                provider=name,
                api_key=key,
                base_url=self.base_url,
                timeout=timeout,
                connect_timeout=connect_timeout,
                extra_headers=dict(extra_headers or {}),
                client=client,
                default_max_tokens=default_max_tokens,
            )
        else:
            if client is not None:
                raise ConfigurationError("client=... is for backend='sdk'")
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "anthropic-version": API_VERSION,
                "User-Agent": USER_AGENT,
            }
            if key:
                headers["x-api-key"] = key
            headers.update(extra_headers or {})
            endpoint = Endpoint(
                provider=name,
                url=self.base_url + "/v1/messages",
                headers=headers,
                timeout=timeout,
                connect_timeout=connect_timeout,
                parse_limits=anthropic_rate_limits,
            )
            self._backend = NativeAnthropic(endpoint, default_max_tokens=default_max_tokens)
