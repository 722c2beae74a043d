"""Shared machinery of the SDK backends (official ``openai`` / ``anthropic`` clients).

The SDK backends send the very body the native drivers send and map the answer with the
native rules, so both backends produce equal results. What the SDK would build from the
answer only to be taken apart again is skipped: a non-streamed answer is decoded once,
from the response bytes, by the parser the native backend uses (``_sdk_wire.json_object``), and
streams ask the SDK for each event's decoded JSON object instead of a typed model.
Errors are translated at this boundary by ``_sdk_wire.sdk_error``: nothing above
``providers/`` sees an ``openai.*``, ``anthropic.*`` or ``httpx2.*`` exception. The mapped
errors are raised outside the ``except`` block and unchained (neither ``__cause__`` nor
``__context__``): the SDK's exception carries the request with its headers, so chaining it
would make the API key reachable from every error we raise.

This module imports neither SDK: the backends pass their SDK module in, and import it
only when the SDK backend is actually used.
"""

from __future__ import annotations

import time
from collections import deque
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import anyio

from .._exceptions import (
    ConfigurationError,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
)
from .._types import ChatRequest, Chunk, RateLimitInfo, Response
from ._errors import (
    LimitsParser,
    broken,
    json_instead_of_stream,
)
from ._sdk_wire import header_dict, json_object, sdk_error
from ._sse import looks_like_sse

if TYPE_CHECKING:
    from ._http import HttpResources

__all__ = ["SDKBackend", "SDKBackendStream", "SDKSettings", "SDKStream"]


class SDKStream:
    """Chunks from an SDK's event stream, with the native stream's semantics.

    Subclasses implement :meth:`_start` (send the request; return the SDK's async
    iterator and the response headers) and :meth:`_on_item` (one event, as the SDK
    decoded it, to chunks).
    """

    __slots__ = (
        "_count",
        "_done",
        "_error",
        "_finished",
        "_it",
        "_parse_limits",
        "_parts",
        "_pending",
        "_sdk",
        "_stream",
        "model",
        "provider",
        "rate_limits",
    )

    def __init__(
        self, sdk: ModuleType, *, provider: str, model: str, parse_limits: LimitsParser
    ) -> None:
        self._sdk = sdk
        self.provider = provider
        self.model = model
        self._parse_limits = parse_limits
        self.rate_limits: RateLimitInfo | None = None
        self._stream: Any = None
        self._it: Any = None
        self._pending: deque[Chunk] = deque()
        self._error: ProviderError | None = None
        self._done = False
        self._finished = False
        self._parts: list[str] = []
        self._count = 0

    def _map(self, exc: BaseException) -> ProviderError:
        return sdk_error(
            exc,
            self._sdk,
            provider=self.provider,
            model=self.model,
            parse_limits=self._parse_limits,
        )

    async def _start(self) -> tuple[Any, Any]:
        """Send the request: ``(sdk_stream, headers)`` (subclasses)."""
        raise NotImplementedError

    def _on_item(self, item: Any) -> None:
        """Turn one SDK event (its decoded JSON object) into chunks (subclasses)."""
        raise NotImplementedError

    async def __aenter__(self) -> SDKStream:
        failure: ProviderError | None = None
        try:
            stream, headers = await self._start()
        except Exception as exc:
            failure = self._map(exc)
        if failure is not None:
            raise failure  # unchained: the SDK error holds the request (API key included)
        self._stream = stream
        self._it = stream
        headers = header_dict(headers)
        self.rate_limits = self._parse_limits(headers)
        if headers.get("content-type", "").startswith("application/json"):
            await self._not_a_stream(stream)
        return self

    async def _not_a_stream(self, stream: Any) -> None:
        # As the native backend does: a JSON body where a stream was asked for is an error,
        # unless the body is an event stream after all (mislabelled): then the SDK's
        # iterator replays the body just read (httpx keeps it) as the stream it is.
        failure: ProviderError | None = None
        try:
            data = await stream.response.aread()
        except Exception as exc:
            failure = self._map(exc)
        if failure is None and looks_like_sse(data):
            return
        await self._close()
        if failure is not None:
            raise failure  # unchained: the SDK error holds the request (API key included)
        raise json_instead_of_stream(data, provider=self.provider, model=self.model)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        stream, self._stream = self._stream, None
        self._it = None
        if stream is None:
            return
        # Closing awaits (httpx2); shield it so a cancelled consumer still frees the socket.
        with anyio.CancelScope(shield=True):
            try:
                # Finish the SDK's own event generator now rather than leaving it to the
                # garbage collector; then make sure the response is closed.
                inner = getattr(stream, "__dict__", {}).get("_iterator")
                if inner is not None and hasattr(inner, "aclose"):
                    await inner.aclose()
                await stream.close()
            except Exception:  # closing a broken connection may fail; nothing to report
                pass

    def __aiter__(self) -> SDKStream:
        return self

    async def __anext__(self) -> Chunk:
        pending = self._pending
        while not pending:
            if self._error is not None:
                err = self._error
                await self._close()
                out = broken(err, partial_text="".join(self._parts), chunks_received=self._count)
                if out is err:
                    raise err
                raise out from err
            if self._done:
                raise StopAsyncIteration
            if self._it is None:
                raise RuntimeError("iterate the stream inside `async with provider.stream(...)`")
            try:
                item = await self._it.__anext__()
            except StopAsyncIteration:
                self._done = True
                if not self._finished:
                    ended = ConnectionFailed(
                        "the stream ended before its end marker",
                        provider=self.provider,
                        model=self.model,
                    )
                    ended.response_started = True  # after a 200: maybe billed
                    self._error = ended
                continue
            except Exception as exc:
                # Not chained to the SDK's error: it holds the request, API key included.
                err = self._map(exc)
                if isinstance(err, ConnectionFailed):
                    err.response_started = True  # after a 200: the provider may have billed
                self._error = err
                continue
            try:
                self._on_item(item)
            except ProviderError as exc:
                self._error = exc
            except Exception as exc:
                err = MalformedResponse(
                    f"malformed stream event: {type(exc).__name__}: {exc}",
                    provider=self.provider,
                    model=self.model,
                )
                err.__cause__ = exc
                self._error = err
        return pending.popleft()

    def _emit(self, chunk: Chunk) -> None:
        self._pending.append(chunk)
        if chunk.text:
            self._parts.append(chunk.text)
            self._count += 1
        elif chunk.tool_calls:
            self._count += 1


class SDKSettings(TypedDict):
    """The settings every SDK backend takes (keyword arguments of its constructor)."""

    provider: str
    api_key: str | None
    base_url: str
    timeout: float | None
    connect_timeout: float | None
    extra_headers: dict[str, str]
    client: Any


class SDKBackend:
    """What the SDK backends share: the client they build or were given, its life cycle
    on the asyncllm client's pool, and the non-streaming call with its error mapping.

    Subclasses name their SDK (:meth:`_import_sdk`), build its client
    (:meth:`_new_client`), the wire body (:meth:`_body`), send it (:meth:`_send`, returning
    the response with its body read) and turn the decoded answer into a
    :class:`Response` (:meth:`_response`).
    """

    def __init__(self, *, parse_limits: LimitsParser, **settings: Unpack[SDKSettings]) -> None:
        self.provider = settings["provider"]
        self._api_key = settings["api_key"]
        self._base_url = settings["base_url"]
        self._timeout = settings["timeout"]
        self._connect_timeout = settings["connect_timeout"]
        self._extra_headers = settings["extra_headers"]
        self._given = settings["client"]
        self._client: Any = settings["client"]
        self._sdk: ModuleType | None = None
        self._response_cls: Any = None
        self._stream_cls: Any = None
        self._parse_limits = parse_limits

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r})"

    def _import_sdk(self) -> ModuleType:
        """The SDK module, imported only now (subclasses)."""
        raise NotImplementedError

    def _new_client(self, sdk: ModuleType, http: HttpResources, timeout: Any) -> Any:
        """The SDK client on the shared pool, ``max_retries=0`` (subclasses)."""
        raise NotImplementedError

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        """The native driver's wire body (subclasses)."""
        raise NotImplementedError

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        """Send a non-streaming request; the httpx2 response, body read (subclasses)."""
        raise NotImplementedError

    def _response(
        self, obj: dict[str, Any], *, model: str, started: float, rate_limits: Any
    ) -> Response:
        """A :class:`Response` from the decoded answer (subclasses)."""
        raise NotImplementedError

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources."""
        sdk = self._sdk = self._import_sdk()
        import httpx2

        # Built once (subscripting a generic is not free): what a raw call returns, and
        # the stream class that yields each event's decoded JSON object.
        self._response_cls = httpx2.Response
        self._stream_cls = sdk.AsyncStream[object]
        if self._given is not None:
            return
        timeout = httpx2.Timeout(self._timeout, connect=self._connect_timeout)
        self._client = self._new_client(sdk, http, timeout)

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

    async def complete(self, request: ChatRequest, model: str) -> Response:
        """``request`` on ``model`` through the non-streaming endpoint."""
        client, sdk = self._require()
        body = self._body(request, model, stream=False)
        started = time.perf_counter()
        failure: ProviderError | None = None
        try:
            resp = await self._send(client, body)
            # The body was read by the SDK (not a stream): decode it once, ourselves.
            data = resp.content
        except Exception as exc:
            failure = sdk_error(
                exc, sdk, provider=self.provider, model=model, parse_limits=self._parse_limits
            )
        if failure is not None:
            # Raised outside the handler, unchained: the SDK's error holds the request and
            # its headers, API key included, and must not be reachable from ours.
            raise failure
        obj = json_object(data, provider=self.provider, model=model)
        return self._response(
            obj,
            model=model,
            started=started,
            rate_limits=self._parse_limits(header_dict(resp.headers)),
        )


class SDKBackendStream(SDKStream):
    """An :class:`SDKStream` for one request body of an :class:`SDKBackend`."""

    __slots__ = ("_body", "_client", "_stream_cls")

    def __init__(
        self,
        backend: SDKBackend,
        client: Any,
        sdk: ModuleType,
        body: dict[str, Any],
        *,
        model: str,
    ) -> None:
        super().__init__(
            sdk, provider=backend.provider, model=model, parse_limits=backend._parse_limits
        )
        self._client = client
        self._body = body
        self._stream_cls = backend._stream_cls
