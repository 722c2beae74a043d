"""The SDK backend of the OpenAI drivers: ``openai.AsyncOpenAI`` over the shared httpx2 pool.

The compatibility path (Azure OpenAI, custom auth, a client the application already
built). It sends the native driver's body, maps the SDK's typed chunks with the native
rules and translates every SDK exception at this boundary. ``openai`` is imported only
when this backend is opened.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .._types import ChatRequest, Chunk, Response, ToolCallDelta
from ._headers import openai_rate_limits
from ._openai import completion_response
from ._openai_wire import build_body, finish_reason, usage_from
from ._sdk import SDKStream, maybe_await, sdk_error, split_body

if TYPE_CHECKING:
    from types import ModuleType

    from ._http import HttpResources

__all__ = ["OpenAISDK"]

# What the SDK needs as typed arguments; the rest of the body goes through extra_body.
_TYPED = ("model", "messages", "stream")


def _import_sdk() -> ModuleType:
    import openai

    return openai


class OpenAISDK:
    """``openai.AsyncOpenAI`` with ``max_retries=0`` (asyncllm retries) on the shared pool."""

    def __init__(
        self,
        *,
        provider: str,
        api_key: str | None,
        base_url: str,
        organization: str | None,
        timeout: float | None,
        connect_timeout: float | None,
        extra_headers: dict[str, str],
        client: Any,
        stream_usage: bool,
    ) -> None:
        self.provider = provider
        self._api_key = api_key
        self._base_url = base_url
        self._organization = organization
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._extra_headers = extra_headers
        self._given = client
        self._client: Any = client
        self._sdk: ModuleType | None = None
        self.stream_usage = stream_usage

    def __repr__(self) -> str:
        return f"OpenAISDK(base_url={self._base_url!r})"

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources."""
        self._sdk = _import_sdk()
        if self._given is not None:
            return
        import httpx2

        self._client = self._sdk.AsyncOpenAI(
            # Servers without auth (vLLM, Ollama) accept any key; the SDK insists on one.
            api_key=self._api_key or "EMPTY",
            base_url=self._base_url,
            organization=self._organization,
            max_retries=0,
            timeout=httpx2.Timeout(self._timeout, connect=self._connect_timeout),
            default_headers=self._extra_headers or None,
            http_client=http.httpx_client(),
        )

    async def aclose(self) -> None:
        """Forget what :meth:`open` bound (the pools belong to the client)."""
        # Do not close the SDK client: its httpx2 pool is the asyncllm client's.
        if self._given is None:
            self._client = None

    def _require(self) -> tuple[Any, ModuleType]:
        if self._client is None or self._sdk is None:
            raise ConfigurationError(
                f"provider {self.provider!r} is not open; use it inside `async with Client(...)`"
            )
        return self._client, self._sdk

    def stream(self, request: ChatRequest, model: str) -> _OpenAISDKStream:
        """A token stream for ``request`` on ``model`` (sent on ``__aenter__``)."""
        client, sdk = self._require()
        body = build_body(request, model, stream=True, stream_usage=self.stream_usage)
        return _OpenAISDKStream(client, sdk, body, provider=self.provider, model=model)

    async def complete(self, request: ChatRequest, model: str) -> Response:
        """``request`` on ``model`` through the non-streaming endpoint."""
        client, sdk = self._require()
        kwargs, extra = split_body(build_body(request, model, stream=False), _TYPED)
        started = time.perf_counter()
        try:
            raw = await client.chat.completions.with_raw_response.create(**kwargs, extra_body=extra)
            completion = await maybe_await(raw.parse())
            headers = raw.headers
        except Exception as exc:
            raise sdk_error(
                exc, sdk, provider=self.provider, model=model, parse_limits=openai_rate_limits
            ) from exc
        obj = _completion_dict(completion)
        return completion_response(
            obj,
            provider=self.provider,
            model=model,
            started=started,
            rate_limits=openai_rate_limits(headers),
        )


def _completion_dict(c: Any) -> dict[str, Any]:
    """The fields :func:`parse_completion` reads, from the SDK's typed completion."""
    choices = []
    for ch in c.choices or ():
        msg = ch.message
        tool_calls = [
            {
                "id": tc.id,
                "function": {
                    "name": getattr(tc.function, "name", None),
                    "arguments": getattr(tc.function, "arguments", None),
                },
            }
            for tc in (getattr(msg, "tool_calls", None) or ())
        ]
        choices.append(
            {
                "message": {"content": msg.content, "tool_calls": tool_calls},
                "finish_reason": ch.finish_reason,
            }
        )
    usage = None
    if c.usage is not None:
        details = getattr(c.usage, "prompt_tokens_details", None)
        usage = {
            "prompt_tokens": c.usage.prompt_tokens,
            "completion_tokens": c.usage.completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": getattr(details, "cached_tokens", None) if details else None
            },
        }
    return {"choices": choices, "usage": usage, "model": c.model}


class _OpenAISDKStream(SDKStream):
    __slots__ = ("_body", "_client")

    def __init__(
        self, client: Any, sdk: ModuleType, body: dict[str, Any], *, provider: str, model: str
    ) -> None:
        super().__init__(sdk, provider=provider, model=model, parse_limits=openai_rate_limits)
        self._client = client
        self._body = body

    async def _start(self) -> tuple[Any, Any]:
        kwargs, extra = split_body(self._body, _TYPED)
        raw = await self._client.chat.completions.with_raw_response.create(
            **kwargs, extra_body=extra
        )
        return await maybe_await(raw.parse()), raw.headers

    def _on_item(self, item: Any) -> None:
        if item.model:
            self.model = item.model
        choices = item.choices
        if choices:
            c = choices[0]
            delta = c.delta
            raw_finish = c.finish_reason
            text = getattr(delta, "content", None) if delta is not None else None
            tools = getattr(delta, "tool_calls", None) if delta is not None else None
            if raw_finish is not None:
                # The OpenAI stream's end marker is [DONE], which the SDK swallows; a
                # finish reason is the last thing it lets us see.
                self._finished = True
            if text or tools or raw_finish:
                self._emit(
                    Chunk(
                        text=text or "",
                        tool_calls=tuple(
                            ToolCallDelta(
                                index=tc.index if tc.index is not None else i,
                                id=tc.id,
                                name=getattr(tc.function, "name", None),
                                arguments=getattr(tc.function, "arguments", None) or "",
                            )
                            for i, tc in enumerate(tools or ())
                        ),
                        finish_reason=finish_reason(raw_finish) if raw_finish else None,
                        raw_finish_reason=raw_finish,
                    )
                )
        usage = item.usage
        if usage:
            details = getattr(usage, "prompt_tokens_details", None)
            cached = getattr(details, "cached_tokens", None) if details else None
            self._emit(
                Chunk(
                    usage=usage_from(
                        usage.prompt_tokens or 0, usage.completion_tokens or 0, cached or 0
                    )
                )
            )
