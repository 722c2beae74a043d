"""The SDK backend of the OpenAI drivers: ``openai.AsyncOpenAI`` over the shared httpx2 pool.

The compatibility path (Azure OpenAI, custom auth, a client the application already
built). It sends the native driver's body, maps the answer with the native rules and
translates every SDK exception at this boundary. ``openai`` is imported only when this
backend is opened.

Requests go through the client's generic ``post`` (public SDK API) with the body already
in wire form, not through ``chat.completions.create``: ``create`` only re-checks and
re-transforms its keyword arguments against the SDK's typed parameter dictionaries, a
no-op for a body that is already wire JSON and the largest single CPU cost of an SDK
call. Everything that makes the SDK backend worth having still applies: the client's
authentication (``security``, as ``create`` passes it), Azure's deployment routing (it
reads ``model`` from the body), default headers, timeouts, its error classes, its SSE
decoding and in-stream error events. Instrumentation that wraps
``chat.completions.create`` itself does not see these calls.

Nor does the SDK build models of the answer that would only be taken apart again: a
non-streamed answer is decoded from the response bytes by the native parser, and the
stream yields each chunk's decoded JSON object (``AsyncStream[object]``), mapped here
exactly as the native driver maps it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, ProviderError
from .._types import ChatRequest, Chunk, Response, ToolCallDelta
from ._headers import openai_rate_limits
from ._openai import completion_response
from ._openai_wire import build_body, finish_reason, usage_from
from ._sdk import SDKStream, header_dict, json_object, sdk_error

if TYPE_CHECKING:
    from types import ModuleType

    from ._http import HttpResources

__all__ = ["OpenAISDK"]

_PATH = "/chat/completions"
# What ``chat.completions.create`` passes besides the body: the client adds its API key
# only to requests that ask for bearer authentication. Built once, never mutated.
_OPTIONS: dict[str, Any] = {"security": {"bearer_auth": True}}


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
        self._response_cls: Any = None
        self._stream_cls: Any = None
        self.stream_usage = stream_usage

    def __repr__(self) -> str:
        return f"OpenAISDK(base_url={self._base_url!r})"

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources."""
        sdk = self._sdk = _import_sdk()
        import httpx2

        # What ``post`` is asked to return, built once (subscripting a generic is not free).
        self._response_cls = httpx2.Response
        self._stream_cls = sdk.AsyncStream[object]
        if self._given is not None:
            return
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
        return _OpenAISDKStream(self, client, sdk, body, model=model)

    async def complete(self, request: ChatRequest, model: str) -> Response:
        """``request`` on ``model`` through the non-streaming endpoint."""
        client, sdk = self._require()
        body = build_body(request, model, stream=False)
        started = time.perf_counter()
        failure: ProviderError | None = None
        try:
            # ``cast_to=httpx2.Response``: the SDK hands back the response, body read.
            resp = await client.post(_PATH, cast_to=self._response_cls, body=body, options=_OPTIONS)
            data = resp.content
        except Exception as exc:
            failure = sdk_error(
                exc, sdk, provider=self.provider, model=model, parse_limits=openai_rate_limits
            )
        if failure is not None:
            # Raised outside the handler, unchained: the SDK's error holds the request and
            # its headers, API key included, and must not be reachable from ours.
            raise failure
        obj = json_object(data, provider=self.provider, model=model)
        return completion_response(
            obj,
            provider=self.provider,
            model=model,
            started=started,
            rate_limits=openai_rate_limits(header_dict(resp.headers)),
        )


class _OpenAISDKStream(SDKStream):
    __slots__ = ("_body", "_client", "_stream_cls")

    def __init__(
        self, backend: OpenAISDK, client: Any, sdk: ModuleType, body: dict[str, Any], *, model: str
    ) -> None:
        super().__init__(
            sdk, provider=backend.provider, model=model, parse_limits=openai_rate_limits
        )
        self._client = client
        self._body = body
        self._stream_cls = backend._stream_cls

    async def _start(self) -> tuple[Any, Any]:
        # The SDK's stream over the response (its SSE decoding, ``[DONE]`` and error
        # events), yielding each chunk's decoded JSON object: ``cast_to=object`` skips
        # building a typed model per chunk that ``_on_item`` would only take apart.
        stream = await self._client.post(
            _PATH,
            cast_to=object,
            body=self._body,
            options=_OPTIONS,
            stream=True,
            stream_cls=self._stream_cls,
        )
        return stream, stream.response.headers

    def _on_item(self, item: Any) -> None:
        # ``item`` is the chunk's JSON object as the SDK decoded it (no model built).
        model = item.get("model")
        if model:
            self.model = model
        choices = item.get("choices")
        if choices:
            c = choices[0]
            delta = c.get("delta")
            raw_finish = c.get("finish_reason")
            if delta:
                text = delta.get("content")
                tools = delta.get("tool_calls")
                if text and not tools and raw_finish is None:
                    # The hot path: a plain text delta.
                    self._emit(Chunk(text))
                    text = None
            else:
                text = tools = None
            if raw_finish is not None:
                # The OpenAI stream's end marker is [DONE], which the SDK swallows; a
                # finish reason is the last thing it lets us see.
                self._finished = True
            if text or tools or raw_finish:
                self._emit(
                    Chunk(
                        text=text or "",
                        tool_calls=_tool_deltas(tools) if tools else (),
                        finish_reason=finish_reason(raw_finish) if raw_finish else None,
                        raw_finish_reason=raw_finish,
                    )
                )
        usage = item.get("usage")
        if usage:
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            self._emit(
                Chunk(
                    usage=usage_from(
                        usage.get("prompt_tokens") or 0,
                        usage.get("completion_tokens") or 0,
                        cached or 0,
                    )
                )
            )


def _tool_deltas(raw: list[Any]) -> tuple[ToolCallDelta, ...]:
    out = []
    for i, tc in enumerate(raw):
        fn = tc.get("function") or {}
        index = tc.get("index")
        out.append(
            ToolCallDelta(
                index=index if index is not None else i,
                id=tc.get("id"),
                name=fn.get("name"),
                arguments=fn.get("arguments") or "",
            )
        )
    return tuple(out)
