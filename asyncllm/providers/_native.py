"""The native backend's shared machinery: one POST over the pooled aiohttp session.

Each native driver owns one :class:`Endpoint` (URL, headers and timeouts built once) and
subclasses :class:`NativeStream` with a single method, :meth:`NativeStream._on_event`,
that turns one SSE event of its wire format into chunks, and :class:`NativeBackend` with
its request body and response mapping. Everything else lives here:
the status check and error mapping at ``__aenter__``, reading the socket, the SSE parser,
delivering every chunk parsed before a failure, ``StreamBroken`` after content, and
closing the response on every exit path.

The hot path per chunk is: ``readany`` -> :class:`~._sse.SSEParser` -> ``orjson.loads``
-> one :class:`~asyncllm.Chunk`. No per-request work that can be done once is repeated.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
import orjson

from .._exceptions import ConfigurationError, ConnectionFailed, MalformedResponse, ProviderError
from .._types import ChatRequest, Chunk, RateLimitInfo, Response
from ._errors import (
    LimitsParser,
    broken,
    error_from_status,
    json_instead_of_stream,
    transport_error,
)
from ._sse import SSEParser, looks_like_sse

if TYPE_CHECKING:
    from ._http import HttpResources

__all__ = ["Endpoint", "NativeBackend", "NativeStream", "dumps"]


def _default(obj: Any) -> Any:
    # Requests hold Mappings/tuples that are not always plain dicts (MappingProxyType,
    # frozen user types); orjson calls this only for types it cannot serialise itself.
    if hasattr(obj, "keys"):
        return dict(obj)
    if hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes)):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def dumps(body: dict[str, Any]) -> bytes:
    """A request body as JSON bytes."""
    return orjson.dumps(body, default=_default)


class Endpoint:
    """One provider's precomputed POST target: URL, headers, timeouts, error context.

    Args:
        provider: Provider instance name (error context).
        url: Full URL of the endpoint.
        headers: Every request header, including authentication. Never printed.
        timeout: Read timeout in seconds (gap between bytes, including time to the
            response headers); ``None`` for none.
        connect_timeout: Seconds to get a connection.
        parse_limits: The family's rate-limit header parser.
    """

    __slots__ = ("_headers", "_session", "_timeout", "parse_limits", "provider", "url")

    def __init__(
        self,
        *,
        provider: str,
        url: str,
        headers: dict[str, str],
        timeout: float | None,
        connect_timeout: float | None,
        parse_limits: LimitsParser,
    ) -> None:
        self.provider = provider
        self.url = url
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=timeout
        )
        self.parse_limits = parse_limits
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r})"

    def bind(self, http: HttpResources) -> None:
        """Use ``http``'s pooled aiohttp session."""
        self._session = http.aiohttp_session()

    def unbind(self) -> None:
        """Forget the session (the pool belongs to the client)."""
        self._session = None

    async def post(self, body: bytes, model: str) -> aiohttp.ClientResponse:
        """POST ``body``; return the response once its headers show success.

        Raises:
            ProviderError: the mapped HTTP or transport error (the response is closed).
        """
        session = self._session
        if session is None or session.closed:
            raise ConfigurationError(
                f"provider {self.provider!r} is not open; use it inside `async with Client(...)`"
                " or call `await provider.open(HttpResources())` first"
            )
        try:
            # No redirects: an API that redirects a POST is misconfigured, and following
            # one could replay the body elsewhere (the SDKs do not follow them either).
            resp = await session.post(
                self.url,
                data=body,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except Exception as exc:
            raise transport_error(exc, provider=self.provider, model=model) from exc
        if resp.status >= 300:
            try:
                data = await resp.read()
            except Exception:
                data = b""
            finally:
                resp.close()
            raise error_from_status(
                resp.status,
                data,
                resp.headers,
                provider=self.provider,
                model=model,
                parse_limits=self.parse_limits,
            )
        return resp

    async def post_json(
        self, body: bytes, model: str
    ) -> tuple[dict[str, Any], RateLimitInfo | None]:
        """POST ``body`` to a non-streaming endpoint; the decoded JSON object and limits."""
        resp = await self.post(body, model)
        try:
            data = await resp.read()
        except Exception as exc:
            resp.close()
            err = transport_error(exc, provider=self.provider, model=model)
            if isinstance(err, ConnectionFailed):
                # The provider answered 200 and generated the text; only its delivery broke.
                # That attempt is billed: it must not look like a failed connect.
                err.response_started = True
            raise err from exc
        resp.release()
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MalformedResponse(
                f"response is not JSON: {data[:200]!r}", provider=self.provider, model=model
            ) from exc
        if not isinstance(obj, dict):
            raise MalformedResponse(
                f"response is not a JSON object: {data[:200]!r}",
                provider=self.provider,
                model=model,
            )
        return obj, self.parse_limits(resp.headers)


class NativeStream:
    """An async context manager and async iterator of chunks over one SSE response.

    Subclasses implement :meth:`_on_event`, which appends to ``self._pending`` (via
    :meth:`_emit`), sets ``self._finished`` once the answer is complete (a clean end of the
    body is then no error) and ``self._ended`` at the wire format's end marker (after which
    not even a failing read of the remaining bytes loses anything). A failure
    while parsing or reading is kept until the chunks parsed before it have been delivered,
    then raised (as :class:`~asyncllm.StreamBroken` when content was delivered).
    """

    __slots__ = (
        "_body",
        "_content",
        "_count",
        "_ended",
        "_endpoint",
        "_eof",
        "_error",
        "_finished",
        "_parser",
        "_parts",
        "_pending",
        "_resp",
        "model",
        "rate_limits",
    )

    def __init__(self, endpoint: Endpoint, body: bytes, model: str) -> None:
        self._endpoint = endpoint
        self._body = body
        self.model = model
        self.rate_limits: RateLimitInfo | None = None
        self._resp: aiohttp.ClientResponse | None = None
        self._content: aiohttp.StreamReader | None = None
        self._parser = SSEParser()
        self._pending: deque[Chunk] = deque()
        self._error: ProviderError | None = None
        self._eof = False
        self._finished = False
        self._ended = False
        self._parts: list[str] = []
        self._count = 0

    # -- context manager ---------------------------------------------------------------

    async def __aenter__(self) -> NativeStream:
        endpoint = self._endpoint
        resp = await endpoint.post(self._body, self.model)
        self.rate_limits = endpoint.parse_limits(resp.headers)
        head = b""
        if resp.content_type == "application/json":
            # Some servers answer a stream request with a plain JSON body (often an error);
            # others send a real event stream labelled application/json, which the SDKs
            # parse as a stream: look at the body, not the label.
            head = await self._peek(resp)
            if not looks_like_sse(head):
                await self._not_a_stream(resp, head)
        self._resp = resp
        self._content = resp.content
        if head:
            self._feed(head)
        return self

    async def _peek(self, resp: aiohttp.ClientResponse) -> bytes:
        head = b""
        try:
            while len(head.lstrip()) < 8:
                more = await resp.content.readany()
                if not more:
                    break
                head += more
        except Exception as exc:
            resp.close()
            raise transport_error(exc, provider=self._endpoint.provider, model=self.model) from exc
        return head

    async def _not_a_stream(self, resp: aiohttp.ClientResponse, head: bytes) -> NoReturn:
        provider = self._endpoint.provider
        try:
            data = head + await resp.content.read()
        except Exception as exc:
            raise transport_error(exc, provider=provider, model=self.model) from exc
        finally:
            resp.close()
        raise json_instead_of_stream(data, provider=provider, model=self.model)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            # Closing is synchronous in aiohttp, so no await (and nothing to shield) here.
            # A fully read body keeps its pooled connection; anything else drops it, which
            # is what tells the server the client went away.
            if self._eof and self._error is None:
                resp.release()
            else:
                resp.close()

    # -- iteration ---------------------------------------------------------------------

    def __aiter__(self) -> NativeStream:
        return self

    async def __anext__(self) -> Chunk:
        pending = self._pending
        while not pending:
            if self._error is not None:
                self._raise()
            if self._eof:
                raise StopAsyncIteration
            await self._read()
        return pending.popleft()

    def _raise(self) -> NoReturn:
        err = self._error
        assert err is not None
        self._close()
        out = broken(err, partial_text="".join(self._parts), chunks_received=self._count)
        if out is err:
            raise err
        raise out from err

    async def _read(self) -> None:
        content = self._content
        if content is None:
            raise RuntimeError("iterate the stream inside `async with provider.stream(...)`")
        try:
            data = await content.readany()
        except Exception as exc:
            if self._ended:  # the end marker arrived; a failing drain loses nothing
                self._eof = True
                return
            err = transport_error(exc, provider=self._endpoint.provider, model=self.model)
            if isinstance(err, ConnectionFailed):
                err.response_started = True  # after a 200: the provider may have billed it
            err.__cause__ = exc
            self._error = err
            return
        if not data:
            self._eof = True
            if not self._finished:
                self._error = self._ended_early()
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            for event, payload in self._parser.feed(data):
                self._on_event(event, payload)
        except ProviderError as exc:
            self._error = exc
        except Exception as exc:  # orjson errors, unexpected shapes
            err = MalformedResponse(
                f"malformed stream event: {type(exc).__name__}: {exc}",
                provider=self._endpoint.provider,
                model=self.model,
            )
            err.__cause__ = exc
            self._error = err

    def _ended_early(self) -> ProviderError:
        err = ConnectionFailed(
            "the stream ended before its end marker",
            provider=self._endpoint.provider,
            model=self.model,
        )
        err.response_started = True  # after a 200: the provider may have billed it
        return err

    def _emit(self, chunk: Chunk) -> None:
        """Queue a chunk; count it as content when it carries text or tool calls."""
        self._pending.append(chunk)
        if chunk.text:
            self._parts.append(chunk.text)
            self._count += 1
        elif chunk.tool_calls:
            self._count += 1

    def _on_event(self, event: str | None, data: bytes) -> None:
        """Turn one SSE event into chunks (subclasses)."""
        raise NotImplementedError


class NativeBackend:
    """A native :class:`~._driver.Backend`: one wire format over one :class:`Endpoint`.

    Subclasses set :attr:`stream_type` and implement :meth:`_body` (the request body) and
    :meth:`_response` (a decoded non-streamed answer as a :class:`~asyncllm.Response`).

    Args:
        endpoint: The provider's precomputed POST target.
    """

    #: The :class:`NativeStream` subclass that reads this wire format's events.
    stream_type: type[NativeStream]

    def __init__(self, endpoint: Endpoint) -> None:
        self.provider = endpoint.provider
        self.endpoint = endpoint

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources."""
        self.endpoint.bind(http)

    async def aclose(self) -> None:
        """Forget what :meth:`open` bound (the pools belong to the client)."""
        self.endpoint.unbind()

    def stream(self, request: ChatRequest, model: str) -> NativeStream:
        """A token stream for ``request`` on ``model`` (sent on ``__aenter__``)."""
        body = dumps(self._body(request, model, stream=True))
        return self.stream_type(self.endpoint, body, model)

    async def complete(self, request: ChatRequest, model: str) -> Response:
        """``request`` on ``model`` through the non-streaming endpoint."""
        body = dumps(self._body(request, model, stream=False))
        started = time.perf_counter()
        obj, limits = await self.endpoint.post_json(body, model)
        return self._response(obj, model, started, limits)

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        """The JSON body of ``request`` (subclasses)."""
        raise NotImplementedError

    def _response(
        self, obj: Mapping[str, Any], model: str, started: float, limits: RateLimitInfo | None
    ) -> Response:
        """The :class:`~asyncllm.Response` of a decoded answer (subclasses)."""
        raise NotImplementedError
