"""The OpenAI chat-completions driver (native aiohttp backend by default, or the SDK)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._exceptions import ConfigurationError
from .._types import ChatRequest, RateLimitInfo, Response
from .._version import USER_AGENT
from ._driver import (
    Backend,
    Driver,
    check_backend,
    register_driver_secrets,
    resolve_api_key,
)
from ._headers import openai_rate_limits
from ._native import Endpoint, NativeBackend
from ._openai_wire import OpenAIStream, build_body, completion_response

__all__ = ["OpenAIProvider"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class NativeOpenAI(NativeBackend):
    """The OpenAI wire protocol over the pooled aiohttp session.

    Args:
        endpoint: The ``.../chat/completions`` endpoint (headers and timeouts built once).
        stream_usage: Ask for the final usage chunk (``stream_options.include_usage``).
    """

    stream_type = OpenAIStream

    def __init__(self, endpoint: Endpoint, *, stream_usage: bool) -> None:
        super().__init__(endpoint)
        self.stream_usage = stream_usage

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        return build_body(request, model, stream=stream, stream_usage=self.stream_usage)

    def _response(
        self, obj: Mapping[str, Any], model: str, started: float, limits: RateLimitInfo | None
    ) -> Response:
        return completion_response(
            obj, provider=self.provider, model=model, started=started, rate_limits=limits
        )


class OpenAIProvider(Driver):
    """OpenAI's chat-completions API.

    Args:
        name: Instance name (limits, breakers and statistics are keyed on it).
        model: Default model.
        api_key: API key; default ``$OPENAI_API_KEY``. Never logged or printed.
        base_url: API root; default ``$OPENAI_BASE_URL`` or ``https://api.openai.com/v1``.
        organization: ``OpenAI-Organization`` header.
        backend: ``"native"`` (aiohttp, the fast path) or ``"sdk"`` (``openai.AsyncOpenAI``
            over the client's shared httpx2 pool; for Azure and custom auth).
        timeout: Read timeout in seconds: the longest wait for the next byte, including
            the response headers. Time-to-first-token deadlines belong to the orchestrator.
        connect_timeout: Seconds to obtain a connection.
        extra_headers: Headers added to every request.
        client: With ``backend="sdk"``: a ready ``openai.AsyncOpenAI``-compatible client
            (``AsyncAzureOpenAI``...) to use instead of building one. Then no API key is
            needed here.
        stream_usage: Send ``stream_options: {"include_usage": true}`` with streams, so
            the server ends them with a usage chunk. Default: on for this provider (OpenAI's
            API has it), off for :class:`OpenAICompatibleProvider` (strict servers reject
            the unknown field, and the official SDK never adds it on its own); turn it on
            for servers that support it (vLLM, Ollama, LiteLLM...). A stream without usage
            is booked at its worst case (``Response.usage_estimated``).

    Raises:
        ConfigurationError: no API key, or an unknown backend.
    """

    kind = "openai"
    _key_env: str | None = "OPENAI_API_KEY"
    _url_env: str | None = "OPENAI_BASE_URL"
    _default_url: str | None = DEFAULT_BASE_URL
    _key_required = True
    #: Whether streams ask for a usage chunk unless ``stream_usage=`` says otherwise.
    _stream_usage_default = True

    def __init__(
        self,
        *,
        name: str = "openai",
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        backend: str = "native",
        timeout: float | None = 600.0,
        connect_timeout: float | None = 10.0,
        extra_headers: Mapping[str, str] | None = None,
        client: Any = None,
        stream_usage: bool | None = None,
    ) -> None:
        super().__init__(name, model=model)
        self.backend = check_backend(backend, name)
        if stream_usage is None:
            stream_usage = self._stream_usage_default
        url = base_url or (os.environ.get(self._url_env) if self._url_env else None)
        url = url or self._default_url
        if not url:
            raise ConfigurationError(f"provider {name!r} needs base_url=...")
        self.base_url = url.rstrip("/")
        key = resolve_api_key(
            api_key,
            self._key_env,
            provider=name,
            required=self._key_required and client is None,
        )
        register_driver_secrets(key, extra_headers, client)
        self._backend: Backend
        if self.backend == "sdk":
            from ._openai_sdk import OpenAISDK

            self._backend = OpenAISDK(
                provider=name,
                api_key=key,
                base_url=self.base_url,
                organization=organization,
                timeout=timeout,
                connect_timeout=connect_timeout,
                extra_headers=dict(extra_headers or {}),
                client=client,
                stream_usage=stream_usage,
            )
        else:
            if client is not None:
                raise ConfigurationError("client=... is for backend='sdk'")
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
            if key:
                headers["Authorization"] = f"Bearer {key}"
            if organization:
                headers["OpenAI-Organization"] = organization
            headers.update(extra_headers or {})
            endpoint = Endpoint(
                provider=name,
                url=self.base_url + "/chat/completions",
                headers=headers,
                timeout=timeout,
                connect_timeout=connect_timeout,
                parse_limits=openai_rate_limits,
            )
            self._backend = NativeOpenAI(endpoint, stream_usage=stream_usage)
