"""The SDK backend of the Anthropic driver: ``anthropic.AsyncAnthropic`` on the shared pool.

The compatibility path (Bedrock, Vertex, custom auth, a client the application already
built). Same body as the native driver, the same event mapping (:func:`on_event`), every
SDK exception translated at this boundary. ``anthropic`` is imported only when this
backend is opened.

Calls go through ``messages.with_raw_response.create``: unlike OpenAI's, ``create`` does
not re-transform the body, and it adds behaviour of its own (the non-streaming timeout
guard, tracing spans, deprecation warnings). What the SDK would then build from the
answer is skipped, as it would only be taken apart again: a non-streamed answer is
decoded once from the response bytes by the native parser, and a stream is the SDK's own
event stream (SSE decoding, ``ping`` and ``error`` events) asked for each event's decoded
JSON object (``parse(to=AsyncStream[object])``) rather than a typed model per event.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Unpack

import anyio
import orjson

from .._types import ChatRequest, Response
from .._version import USER_AGENT
from ._anthropic_wire import API_VERSION, build_body, message_response, on_event
from ._headers import anthropic_rate_limits
from ._sdk import SDKBackend, SDKBackendStream, SDKSettings
from ._sdk_wire import split_body

if TYPE_CHECKING:
    from types import ModuleType

    from ._http import HttpResources

__all__ = ["AnthropicSDK"]

_TYPED = ("model", "messages", "max_tokens", "stream")


class AnthropicSDK(SDKBackend):
    """``anthropic.AsyncAnthropic`` with ``max_retries=0`` on the shared httpx2 pool."""

    def __init__(self, *, default_max_tokens: int, **settings: Unpack[SDKSettings]) -> None:
        super().__init__(parse_limits=anthropic_rate_limits, **settings)
        self.default_max_tokens = default_max_tokens

    def _import_sdk(self) -> ModuleType:
        import anthropic

        return anthropic

    def _new_client(self, sdk: ModuleType, http: HttpResources, timeout: Any) -> Any:
        return sdk.AsyncAnthropic(
            api_key=self._api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=timeout,
            # The same version and User-Agent as the native backend (one constant each).
            default_headers={
                "anthropic-version": API_VERSION,
                "User-Agent": USER_AGENT,
                **self._extra_headers,
            },
            http_client=http.httpx_client(),
        )

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        return build_body(request, model, stream=stream, default_max_tokens=self.default_max_tokens)

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        kwargs, extra = split_body(body, _TYPED)
        raw = await client.messages.with_raw_response.create(**kwargs, extra_body=extra)
        return raw.http_response

    def _response(
        self, obj: dict[str, Any], *, model: str, started: float, rate_limits: Any
    ) -> Response:
        return message_response(
            obj, provider=self.provider, model=model, started=started, rate_limits=rate_limits
        )

    def stream(self, request: ChatRequest, model: str) -> _AnthropicSDKStream:
        """A token stream for ``request`` on ``model`` (sent on ``__aenter__``)."""
        client, sdk = self._require()
        body = self._body(request, model, stream=True)
        return _AnthropicSDKStream(self, client, sdk, body, model=model)


class _AnthropicSDKStream(SDKBackendStream):
    __slots__ = ("_ended", "_gen", "_tools", "_usage")

    def __init__(
        self,
        backend: AnthropicSDK,
        client: Any,
        sdk: ModuleType,
        body: dict[str, Any],
        *,
        model: str,
    ) -> None:
        super().__init__(backend, client, sdk, body, model=model)
        self._ended = False  # set with ``_finished`` at ``message_stop`` (unused here)
        self._gen: AsyncGenerator[tuple[str | None, Any], None] | None = None
        self._usage: dict[str, Any] = {}
        # content-block index -> (tool ordinal, argument fragments)
        self._tools: dict[Any, tuple[int, list[str]]] = {}

    async def _start(self) -> tuple[Any, Any]:
        kwargs, extra = split_body(self._body, _TYPED)
        raw = await self._client.messages.with_raw_response.create(**kwargs, extra_body=extra)
        stream = await raw.parse(to=self._stream_cls)
        return stream, raw.http_response.headers

    async def __aenter__(self) -> _AnthropicSDKStream:
        await super().__aenter__()
        # The SDK's own iterator skips events without an ``event:`` name, which some
        # Anthropic-compatible servers never send (the data's ``type`` says it all, and
        # the native backend reads that): read the SDK's decoded SSE events instead.
        self._gen = self._it = self._events(self._stream)
        return self

    async def _close(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            # Closing a broken connection may fail; there is nothing to report then.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await gen.aclose()
        await super()._close()

    async def _events(self, stream: Any) -> AsyncGenerator[tuple[str | None, Any], None]:
        async for sse in stream._iter_events():
            if sse.event == "ping" or not sse.data:
                continue
            yield sse.event, orjson.loads(sse.data)

    def _on_item(self, item: Any) -> None:
        # ``item`` is ``(event name or None, decoded JSON object)``; ``on_event`` maps
        # ``error`` events (named or typed) to the asyncllm error, as the native backend.
        event, obj = item
        if isinstance(obj, dict) and obj.get("type") == "ping":
            return
        on_event(self, obj, event)
