"""``ClientStream``: what ``client.stream(...)`` returns.

It opens the orchestrated stream (:class:`~._request.StreamRun`), through the response
cache when the client has one, and hands out the iterator that assembles the response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .._hooks import CacheMode
from ..providers import StreamAccumulator
from ._request import StreamRun, report_cache_hit

if TYPE_CHECKING:
    from .._client import Client
    from .._typed import Typed
    from .._types import ChatRequest, Chunk, Response
    from ._policy import Strategy

__all__ = ["ClientStream"]


class ClientStream:
    """``async with client.stream(...) as s: async for chunk in s: ...``.

    Attributes:
        response: The assembled :class:`~asyncllm.Response` once the stream was read to
            its end (``None`` before, or when left early).
    """

    __slots__ = (
        "_acc",
        "_cache_mode",
        "_cache_ttl",
        "_client",
        "_cm",
        "_it",
        "_response",
        "_run",
        "_strategy",
        "_timeout",
        "_typed",
        "request",
    )

    def __init__(
        self,
        client: Client,
        request: ChatRequest,
        strategy: Strategy,
        timeout: float | None,
        cache_mode: CacheMode,
        cache_ttl: float | None,
        typed: Typed | None = None,
    ) -> None:
        self._client = client
        self._typed = typed
        self.request = request
        self._strategy = strategy
        self._timeout = timeout
        self._cache_mode: CacheMode = cache_mode
        self._cache_ttl = cache_ttl
        self._cm: Any = None
        self._it: AsyncIterator[Chunk] | None = None
        self._run: StreamRun | None = None
        self._acc: StreamAccumulator | None = None
        self._response: Response | None = None

    def _open_run(self) -> StreamRun:
        self._run = StreamRun(self._client._rt, self.request, self._strategy, self._timeout)
        return self._run

    @property
    def request_id(self) -> str | None:
        """The logical request's id (``None`` for a cache hit)."""
        run = self._run
        return None if run is None or run.call is None else run.call.request_id

    @property
    def response(self) -> Response | None:
        """The assembled response, once the stream was read to its end."""
        if self._response is None and self._acc is None:
            return getattr(self._it, "response", None)
        return self._response

    @property
    def provider(self) -> str | None:
        """Who answers, once known."""
        response = self.response
        return getattr(self._it, "provider", None) or (response.provider if response else None)

    async def __aenter__(self) -> Self:
        client = self._client
        if not client._opened:
            await client._open()
        cache = client._cache
        if cache is None:
            self._cm = self._open_run()
        else:
            self._cm = cache.stream(
                self.request,
                client.route(self.request),
                self._open_run,
                mode=self._cache_mode,
                ttl=self._cache_ttl,
            )
        it = self._it = await self._cm.__aenter__()
        if not hasattr(it, "response"):
            # An iterator that does not assemble its response: assemble it here.
            self._acc = StreamAccumulator()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._cm.__aexit__(exc_type, exc, tb)

    def __aiter__(self) -> AsyncIterator[Chunk]:
        # The orchestrated (or cached) iterator assembles the response itself: hand it out
        # directly, one async frame less per chunk.
        if self._acc is None and self._it is not None and self._typed is None:
            return self._it
        return self

    async def __anext__(self) -> Chunk:
        it = self._it
        if it is None:
            raise RuntimeError("iterate the stream inside `async with client.stream(...)`")
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            self._finish()
            typed, self._typed = self._typed, None
            response = self.response
            if typed is not None and response is not None:
                # Raises StructuredOutputError (from the end of the stream) when the
                # answer does not fit the response_format.
                self._response = typed.apply(response)
            raise
        if self._acc is not None:
            self._acc.add(chunk)
        return chunk

    def _finish(self) -> None:
        if self._response is None and self._acc is not None:
            route = self._client.route(self.request)
            response = self._acc.response(provider=route[0][0], model=route[0][2])
            response.cached = self._run is None
            self._response = response
            if response.cached:
                report_cache_hit(self._client._rt, self.request, response, stream=True)
