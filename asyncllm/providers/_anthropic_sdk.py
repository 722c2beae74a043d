"""The SDK backend of the Anthropic driver: ``anthropic.AsyncAnthropic`` on the shared pool.

The compatibility path (Bedrock, Vertex, custom auth, a client the application already
built). Same body as the native driver, same event mapping, every SDK exception
translated at this boundary. ``anthropic`` is imported only when this backend is opened.

Calls go through ``messages.with_raw_response.create``: unlike OpenAI's, ``create`` does
not re-transform the body, and it adds behaviour of its own (the non-streaming timeout
guard, tracing spans, deprecation warnings). What the SDK would then build from the
answer is skipped, as it would only be taken apart again: a non-streamed answer is
decoded once from the response bytes by the native parser, and a stream is the SDK's own
event stream (SSE decoding, ``ping`` and ``error`` events) asked for each event's decoded
JSON object (``parse(to=AsyncStream[object])``) rather than a typed model per event.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, ProviderError
from .._types import ChatRequest, Chunk, Response, ToolCallDelta
from ._anthropic import message_response
from ._anthropic_wire import build_body, canonical_arguments, finish_reason, usage_from
from ._headers import anthropic_rate_limits
from ._sdk import SDKStream, header_dict, json_object, sdk_error, split_body

if TYPE_CHECKING:
    from types import ModuleType

    from ._http import HttpResources

__all__ = ["AnthropicSDK"]

_TYPED = ("model", "messages", "max_tokens", "stream")
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _usage_dict(u: Any) -> dict[str, Any]:
    # The counts an event states; one it leaves null keeps what an earlier event said.
    if not u:
        return {}
    out = {}
    for f in _USAGE_FIELDS:
        v = u.get(f)
        if v is not None:
            out[f] = v
    return out


def _import_sdk() -> ModuleType:
    import anthropic

    return anthropic


class AnthropicSDK:
    """``anthropic.AsyncAnthropic`` with ``max_retries=0`` on the shared httpx2 pool."""

    def __init__(
        self,
        *,
        provider: str,
        api_key: str | None,
        base_url: str,
        timeout: float | None,
        connect_timeout: float | None,
        extra_headers: dict[str, str],
        client: Any,
        default_max_tokens: int,
    ) -> None:
        self.provider = provider
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._extra_headers = extra_headers
        self._given = client
        self._client: Any = client
        self._sdk: ModuleType | None = None
        self._stream_cls: Any = None
        self.default_max_tokens = default_max_tokens

    def __repr__(self) -> str:
        return f"AnthropicSDK(base_url={self._base_url!r})"

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources."""
        sdk = self._sdk = _import_sdk()
        # Events as decoded JSON objects; built once (subscripting a generic is not free).
        self._stream_cls = sdk.AsyncStream[object]
        if self._given is not None:
            return
        import httpx2

        self._client = self._sdk.AsyncAnthropic(
            api_key=self._api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=httpx2.Timeout(self._timeout, connect=self._connect_timeout),
            default_headers=self._extra_headers or None,
            http_client=http.httpx_client(),
        )

    async def aclose(self) -> None:
        """Forget what :meth:`open` bound (the pools belong to the client)."""
        # The httpx2 pool is the asyncllm client's: do not close the SDK client.
        if self._given is None:
            self._client = None

    def _require(self) -> tuple[Any, ModuleType]:
        if self._client is None or self._sdk is None:
            raise ConfigurationError(
                f"provider {self.provider!r} is not open; use it inside `async with Client(...)`"
            )
        return self._client, self._sdk

    def stream(self, request: ChatRequest, model: str) -> _AnthropicSDKStream:
        """A token stream for ``request`` on ``model`` (sent on ``__aenter__``)."""
        client, sdk = self._require()
        body = build_body(request, model, stream=True, default_max_tokens=self.default_max_tokens)
        return _AnthropicSDKStream(self, client, sdk, body, model=model)

    async def complete(self, request: ChatRequest, model: str) -> Response:
        """``request`` on ``model`` through the non-streaming endpoint."""
        client, sdk = self._require()
        body = build_body(request, model, stream=False, default_max_tokens=self.default_max_tokens)
        kwargs, extra = split_body(body, _TYPED)
        started = time.perf_counter()
        failure: ProviderError | None = None
        try:
            raw = await client.messages.with_raw_response.create(**kwargs, extra_body=extra)
            # The body was read by the SDK (not a stream): decode it once, ourselves.
            resp = raw.http_response
            data = resp.content
        except Exception as exc:
            failure = sdk_error(
                exc, sdk, provider=self.provider, model=model, parse_limits=anthropic_rate_limits
            )
        if failure is not None:
            # Raised outside the handler, unchained: the SDK's error holds the request and
            # its headers, API key included, and must not be reachable from ours.
            raise failure
        obj = json_object(data, provider=self.provider, model=model)
        return message_response(
            obj,
            provider=self.provider,
            model=model,
            started=started,
            rate_limits=anthropic_rate_limits(header_dict(resp.headers)),
        )


class _AnthropicSDKStream(SDKStream):
    __slots__ = ("_body", "_client", "_stream_cls", "_tools", "_usage")

    def __init__(
        self,
        backend: AnthropicSDK,
        client: Any,
        sdk: ModuleType,
        body: dict[str, Any],
        *,
        model: str,
    ) -> None:
        super().__init__(
            sdk, provider=backend.provider, model=model, parse_limits=anthropic_rate_limits
        )
        self._client = client
        self._body = body
        self._stream_cls = backend._stream_cls
        self._usage: dict[str, Any] = {}
        # content-block index -> (tool ordinal, argument fragments)
        self._tools: dict[Any, tuple[int, list[str]]] = {}

    async def _start(self) -> tuple[Any, Any]:
        kwargs, extra = split_body(self._body, _TYPED)
        raw = await self._client.messages.with_raw_response.create(**kwargs, extra_body=extra)
        stream = await raw.parse(to=self._stream_cls)
        return stream, raw.http_response.headers

    def _on_item(self, ev: Any) -> None:
        # ``ev`` is the event's JSON object as the SDK decoded it (no model built).
        kind = ev.get("type")
        if kind == "content_block_delta":
            delta = ev["delta"]
            dtype = delta.get("type")
            if dtype == "text_delta":
                text = delta.get("text")
                if text:
                    self._emit(Chunk(text))
            elif dtype == "input_json_delta":
                entry = self._tools.get(ev.get("index"))
                if entry is not None:
                    entry[1].append(delta.get("partial_json") or "")
            # thinking / signature / citation deltas are not answer text
        elif kind == "message_start":
            message = ev["message"]
            self.model = message.get("model") or self.model
            self._usage = _usage_dict(message.get("usage"))
        elif kind == "content_block_start":
            block = ev["content_block"]
            btype = block.get("type")
            if btype == "text":
                text = block.get("text")
                if text:
                    self._emit(Chunk(text))
            elif btype == "tool_use":
                ordinal = len(self._tools)
                self._tools[ev.get("index")] = (ordinal, [])
                start = ToolCallDelta(index=ordinal, id=block.get("id"), name=block.get("name"))
                self._emit(Chunk(tool_calls=(start,)))
        elif kind == "content_block_stop":
            entry = self._tools.get(ev.get("index"))
            if entry is not None:
                args = canonical_arguments("".join(entry[1]))
                self._emit(Chunk(tool_calls=(ToolCallDelta(index=entry[0], arguments=args),)))
        elif kind == "message_delta":
            self._usage.update(_usage_dict(ev.get("usage")))
            stop = ev["delta"].get("stop_reason")
            self._emit(
                Chunk(
                    usage=usage_from(self._usage),
                    finish_reason=finish_reason(stop) if stop else None,
                    raw_finish_reason=stop,
                )
            )
        elif kind == "message_stop":
            self._finished = True
        # "ping" never reaches here (the SDK drops it); newer event types are ignored.
