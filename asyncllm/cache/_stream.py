"""Streams on a miss: shared through a pump, or recorded on the way through.

Entered cache (the normal case): the upstream stream is read by a *pump* task in the cache's
task group, which broadcasts every chunk to the subscribers of its :class:`StreamFlight`.
Reading upstream in the cache's task, not a consumer's, is what lets one consumer leave
(break out early, be cancelled) without ending the stream for the others. When the last
subscriber leaves before the end, the flight's scope is cancelled and the upstream stream's
context manager closes the HTTP response.

Cache not entered (no task group to run a pump in): the stream passes straight through a
:class:`RecordingStream` in the consumer's task, with no sharing; it is still stored when
read cleanly to the end.

Either way the first consumer that reads the stream to its end stores the response, in its
own task, before its ``async for`` ends: the entry is there as soon as the loop is over.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from .._types import Chunk, Response
from ..providers import StreamAccumulator
from . import _events as events
from ._inflight import UNWIND_GRACE, CachedStream, StreamFlight
from ._stats import CacheStats, short

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._hooks import Route

__all__ = ["OpenStream", "RecordingStream", "StreamSharing", "pump"]


OpenStream = Callable[[], AbstractAsyncContextManager[AsyncIterator[Chunk]]]
#: Stores a finished response (policy check and TTL included).
StoreFn = Callable[[Response], Awaitable[None]]


def _attr(obj: object, name: str) -> str | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, str) and value else None


def _response(upstream: object, acc: StreamAccumulator, route: Route) -> Response:
    inner = getattr(upstream, "response", None)
    if isinstance(inner, Response) and inner.finish_reason is not None:
        # The orchestrator's own response, assembled from these same chunks: it also
        # carries what the wire does not show (cost, request id, rate limits), which the
        # leader's caller must see as it would without a cache. (Stored copies and
        # followers' copies drop those per-request fields.)
        return inner
    # Text, chunks, tool calls, usage and finish reason are what was seen on the wire; who
    # answered comes from the stream when it says so (a fallback may have answered).
    provider = (
        _attr(inner, "provider") or _attr(upstream, "provider") or (route[0][0] if route else "")
    )
    model = _attr(inner, "model") or _attr(upstream, "model") or (route[0][2] if route else "")
    return acc.response(provider=provider or "unknown", model=model)


async def pump(flight: StreamFlight, open_stream: OpenStream, route: Route) -> None:
    """Run the upstream stream to its end (or error, or cancellation) into ``flight``.

    Sets ``flight.open_error`` when opening failed, ``flight.error`` when the stream failed
    after it opened, ``flight.response`` when it ended; always finishes the flight.
    """
    acc = StreamAccumulator(time.perf_counter())
    opened = False
    try:
        with flight.scope:
            try:
                async with open_stream() as upstream:
                    opened = True
                    flight.opened.set()
                    async for chunk in upstream:
                        acc.add(chunk)
                        flight.push(chunk)
                    response = _response(upstream, acc, route)
            except Exception as exc:
                flight.fail(exc, opened=opened)
            else:
                flight.response = response
    finally:
        flight.finish()


class StreamSharing:
    """The table of shared streams in flight, and how subscribers join and leave them.

    Args:
        stats: The cache's counters.
    """

    __slots__ = ("_stats", "flights")

    def __init__(self, stats: CacheStats) -> None:
        self._stats = stats
        self.flights: dict[str, StreamFlight] = {}

    def joinable(self, key: str, refresh: bool) -> StreamFlight | None:
        """The flight a new subscriber may join (``refresh`` never joins a finished one)."""
        flight = self.flights.get(key)
        if flight is not None and refresh and flight.finished:
            return None
        return flight

    def forget(self, flight: StreamFlight) -> None:
        """Remove ``flight`` from the table (if it is still the one there)."""
        if self.flights.get(flight.key) is flight:
            del self.flights[flight.key]

    def start(
        self, key: str, tg: TaskGroup, open_stream: OpenStream, route: Route, store: StoreFn
    ) -> StreamFlight:
        """Start a new shared stream under ``key``; ``store`` keeps its finished response."""
        flight = StreamFlight(key, store)
        self.flights[key] = flight
        tg.start_soon(self._pump, flight, open_stream, route)
        return flight

    async def _pump(self, flight: StreamFlight, open_stream: OpenStream, route: Route) -> None:
        try:
            await pump(flight, open_stream, route)
        finally:
            if flight.response is None:
                self.forget(flight)
        if flight.error is not None or flight.open_error is not None:
            self._stats.errors += 1

    @asynccontextmanager
    async def subscribe(
        self, flight: StreamFlight, *, leader: bool, model: str
    ) -> AsyncIterator[CachedStream]:
        """Follow ``flight`` from its first chunk; errors at open raise here."""
        flight.subscribers += 1
        try:
            await flight.opened.wait()
            if flight.open_error is not None:
                flight.raise_error(flight.open_error)
            yield CachedStream(flight=flight, leader=leader, model=model, on_end=self._on_end)
        finally:
            flight.subscribers -= 1
            if flight.subscribers == 0 and not flight.read_to_end:
                # Every subscriber left before the end: nothing will be stored.
                self.forget(flight)
                if not flight.finished:
                    flight.scope.cancel()  # nobody is reading: close the upstream stream
                    events.debug("cache_stream_abandoned", key=short(flight.key))
                    # Its attempt ends (and is reported) before this request is; shielded,
                    # bounded: the upstream stream is already cancelled.
                    with anyio.CancelScope(shield=True) as scope:
                        scope.deadline = anyio.current_time() + UNWIND_GRACE
                        while not flight.finished:
                            await flight.changed.wait()

    async def _on_end(self, flight: StreamFlight) -> None:
        try:
            if flight.response is not None and flight.on_store is not None:
                await flight.on_store(flight.response)
        finally:
            self.forget(flight)


class RecordingStream:
    """A pass-through stream that stores its response once read cleanly to the end.

    Used when the cache has no task group to share streams from. Chunks are the upstream's,
    unchanged; ``response`` is set after the last one.
    """

    __slots__ = ("_acc", "_done", "_it", "_route", "_store", "_upstream", "response")

    cached = False
    rate_limits = None

    def __init__(self, upstream: Any, route: Route, store: StoreFn) -> None:
        self._upstream = upstream
        self._it: AsyncIterator[Chunk] = upstream.__aiter__()
        self._acc = StreamAccumulator(time.perf_counter())
        self._route = route
        self._store = store
        self._done = False
        self.response: Response | None = None

    @property
    def model(self) -> str:
        """The model that answers, as far as known."""
        return _attr(self._upstream, "model") or (self._route[0][2] if self._route else "")

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self

    async def __anext__(self) -> Chunk:
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            if not self._done:
                self._done = True
                self.response = _response(self._upstream, self._acc, self._route)
                await self._store(self.response)
            raise
        self._acc.add(chunk)
        return chunk
