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
stream yields each chunk's decoded JSON object (``AsyncStream[object]``), mapped
by the native driver's own function (:func:`on_chunk`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Unpack

from .._types import ChatRequest, Response
from .._version import USER_AGENT
from ._headers import openai_rate_limits
from ._openai_wire import build_body, completion_response, on_chunk
from ._sdk import SDKBackend, SDKBackendStream, SDKSettings

if TYPE_CHECKING:
    from types import ModuleType

    from ._http import HttpResources

__all__ = ["OpenAISDK"]

_PATH = "/chat/completions"
# What ``chat.completions.create`` passes besides the body: the client adds its API key
# only to requests that ask for bearer authentication. Built once, never mutated.
_OPTIONS: dict[str, Any] = {"security": {"bearer_auth": True}}


class OpenAISDK(SDKBackend):
    """``openai.AsyncOpenAI`` with ``max_retries=0`` (asyncllm retries) on the shared pool."""

    def __init__(
        self, *, organization: str | None, stream_usage: bool, **settings: Unpack[SDKSettings]
    ) -> None:
        super().__init__(parse_limits=openai_rate_limits, **settings)
        self._organization = organization
        self.stream_usage = stream_usage
        self._options = _OPTIONS

    def _import_sdk(self) -> ModuleType:
        import openai

        return openai

    def _new_client(self, sdk: ModuleType, http: HttpResources, timeout: Any) -> Any:
        if not self._api_key:
            # No key: send no Authorization at all, as the native backend does (the SDK
            # would send "Bearer EMPTY", the placeholder it must be built with).
            self._options = {**_OPTIONS, "headers": {"Authorization": sdk.Omit()}}
        return sdk.AsyncOpenAI(
            # Servers without auth (vLLM, Ollama) accept any key; the SDK insists on one.
            api_key=self._api_key or "EMPTY",
            base_url=self._base_url,
            organization=self._organization,
            max_retries=0,
            timeout=timeout,
            default_headers=self._default_headers(sdk),
            http_client=http.httpx_client(),
        )

    def _default_headers(self, sdk: ModuleType) -> dict[str, Any]:
        return {"User-Agent": USER_AGENT, **self._extra_headers}

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        return build_body(request, model, stream=stream, stream_usage=self.stream_usage)

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        # ``cast_to=httpx2.Response``: the SDK hands back the response, body read.
        return await client.post(
            _PATH, cast_to=self._response_cls, body=body, options=self._options
        )

    def _response(
        self, obj: dict[str, Any], *, model: str, started: float, rate_limits: Any
    ) -> Response:
        return completion_response(
            obj, provider=self.provider, model=model, started=started, rate_limits=rate_limits
        )

    def stream(self, request: ChatRequest, model: str) -> _OpenAISDKStream:
        """A token stream for ``request`` on ``model`` (sent on ``__aenter__``)."""
        client, sdk = self._require()
        body = self._body(request, model, stream=True)
        stream = _OpenAISDKStream(self, client, sdk, body, model=model)
        stream._options = self._options
        return stream


class _OpenAISDKStream(SDKBackendStream):
    __slots__ = ("_options",)
    _options: dict[str, Any]

    async def _start(self) -> tuple[Any, Any]:
        # The SDK's stream over the response (its SSE decoding, ``[DONE]`` and error
        # events), yielding each chunk's decoded JSON object: ``cast_to=object`` skips
        # building a typed model per chunk that ``_on_item`` would only take apart.
        stream = await self._client.post(
            _PATH,
            cast_to=object,
            body=self._body,
            options=self._options,
            stream=True,
            stream_cls=self._stream_cls,
        )
        return stream, stream.response.headers

    def _on_item(self, item: Any) -> None:
        # ``item`` is the chunk's JSON object as the SDK decoded it (no model built).
        on_chunk(self, item)
