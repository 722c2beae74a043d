"""Shared upstream calls: one call per key, however many callers wait for it.

A *flight* is one upstream call (or stream) that any number of identical requests share. The
call itself runs in a task of the cache's own task group, never in a caller's task, so:

* the first caller leaving (cancelled, timed out) does not fail the others: it only stops
  waiting;
* when the last waiter leaves before the call finished, the flight's cancel scope is
  cancelled, which cancels the upstream call (and closes its HTTP response);
* the outcome (a response or an exception) is published once and every current waiter
  reads it: an error reaches each of them as the same exception, and is never stored.

(When the cache was not entered there is no such task group: a ``complete`` flight is then
*hosted* by the caller that started it, and if that caller leaves first the remaining
waiters start over, see :class:`Orphaned`.)

This module holds the flight records and the chunk broadcast that streams share; the
policy of when to start, join, store and forget them lives in ``_cache.py``.
"""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn

import anyio

from .._exceptions import CacheClosed
from .._types import Chunk, Response, ToolCallDelta

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = [
    "CacheClosed",
    "CachedStream",
    "Flight",
    "Orphaned",
    "StreamFlight",
    "as_shared",
    "replay_chunks",
]

#: Longest wait, on exit, for writes of answers already delivered (network backends are
#: bounded by their ``op_timeout``).
CLOSE_GRACE = 1.0
#: Longest wait of the last caller leaving a shared call or stream for it to unwind (its
#: attempts then report their end before the request does); short, because it delays that
#: caller's cancellation or deadline: an upstream slower to unwind finishes on its own.
UNWIND_GRACE = 0.1


class Orphaned(Exception):
    """A hosted flight's host left before the call finished: the waiters start over."""


class Flight:
    """One shared ``complete`` call.

    ``hosted`` flights run in a task group of the caller that started them (the cache was
    not entered); when that caller leaves early, the call is cancelled and the remaining
    waiters start over (see :class:`Orphaned`).
    """

    __slots__ = (
        "done",
        "error",
        "error_tb",
        "hosted",
        "key",
        "result",
        "scope",
        "shared",
        "waiters",
    )

    def __init__(self, key: str, *, hosted: bool = False) -> None:
        self.key = key
        self.hosted = hosted
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()
        self.waiters = 0
        #: What the upstream call returned (given to the caller that started the flight).
        self.result: Response | None = None
        #: A clean copy for everyone else, made before any caller could touch ``result``.
        self.shared: Response | None = None
        self.error: BaseException | None = None
        self.error_tb: TracebackType | None = None

    def fail(self, error: BaseException) -> None:
        """Record the call's error (and its traceback, restored for every waiter)."""
        self.error, self.error_tb = error, error.__traceback__

    def outcome(self, leader: bool) -> Response:
        """The response for one waiter once ``done`` is set, or the shared error."""
        if self.error is not None:
            # Every waiter raises the same exception; restoring the original traceback each
            # time (as asyncio.Future does) keeps it from growing with every waiter.
            raise self.error.with_traceback(self.error_tb)
        if self.result is None or self.shared is None:
            if self.hosted:
                raise Orphaned
            raise CacheClosed("the cache closed before the shared call finished")
        return self.result if leader else as_shared(self.shared)


def as_shared(response: Response) -> Response:
    """A copy for a caller that rode along: it caused no provider call and costs nothing."""
    return dataclasses.replace(response, cached=True, cost_usd=0.0, request_id=None)


class StreamFlight:
    """One shared upstream stream, broadcast to every subscriber from its first chunk."""

    __slots__ = (
        "changed",
        "chunks",
        "error",
        "error_tb",
        "finished",
        "key",
        "on_store",
        "open_error",
        "opened",
        "read_to_end",
        "response",
        "scope",
        "subscribers",
    )

    def __init__(
        self, key: str, on_store: Callable[[Response], Awaitable[None]] | None = None
    ) -> None:
        self.key = key
        #: Stores the finished response (with the TTL of the request that started it).
        self.on_store = on_store
        self.scope = anyio.CancelScope()
        self.opened = anyio.Event()
        self.open_error: BaseException | None = None
        self.chunks: list[Chunk] = []
        # Replaced on every push: a subscriber that caught up waits on the current one.
        self.changed = anyio.Event()
        self.finished = False
        self.error: BaseException | None = None
        self.error_tb: TracebackType | None = None
        self.response: Response | None = None
        self.subscribers = 0
        # Set by the first subscriber to read the stream to its end: that subscriber stores
        # the response (in its own task, before its iteration ends, so the entry is there
        # as soon as its ``async for`` is over).
        self.read_to_end = False

    def fail(self, error: BaseException, *, opened: bool) -> None:
        """Record a failure to open (raised on entry) or a failure mid-stream."""
        if opened:
            self.error = error
        else:
            self.open_error = error
        self.error_tb = error.__traceback__

    def raise_error(self, error: BaseException) -> NoReturn:
        """Raise one of this flight's errors in a subscriber, with its original traceback."""
        raise error.with_traceback(self.error_tb)

    def push(self, chunk: Chunk) -> None:
        """Publish one upstream chunk to every subscriber."""
        self.chunks.append(chunk)
        changed, self.changed = self.changed, anyio.Event()
        changed.set()

    def finish(self) -> None:
        """Mark the upstream stream over (cleanly, with an error, or cancelled)."""
        self.finished = True
        self.opened.set()
        self.changed.set()


def replay_chunks(response: Response) -> list[Chunk]:
    """A stored response as stream chunks: its original text chunks, its tool calls, then a
    final chunk with usage and finish reason."""
    if response.chunks:
        out = [Chunk(text=c) for c in response.chunks]
    else:
        out = [Chunk(text=response.text)] if response.text else []
    if response.tool_calls:
        out.append(
            Chunk(
                tool_calls=tuple(
                    ToolCallDelta(index=i, id=t.id, name=t.name, arguments=t.arguments)
                    for i, t in enumerate(response.tool_calls)
                )
            )
        )
    out.append(
        Chunk(
            usage=response.usage,
            finish_reason=response.finish_reason,
            raw_finish_reason=response.raw_finish_reason,
        )
    )
    return out


class CachedStream:
    """What ``async with cache.stream(...) as s`` gives on a hit or a shared stream.

    Iterate it for :class:`~asyncllm.Chunk` events. Once it has been read to the end,
    ``response`` is the assembled :class:`~asyncllm.Response`.

    Attributes:
        cached: True when this caller caused no provider call (a hit, or a follower of an
            identical stream already in flight).
        response: The response, after the last chunk was read; ``None`` before.
        model: The model that answered, when known.
        rate_limits: Always ``None``: the cache does not replay rate-limit headers.
    """

    __slots__ = (
        "_chunks",
        "_flight",
        "_i",
        "_leader",
        "_on_end",
        "_replayed",
        "cached",
        "model",
        "response",
    )

    rate_limits = None

    def __init__(
        self,
        *,
        flight: StreamFlight | None = None,
        replay: Response | None = None,
        leader: bool = False,
        model: str = "",
        on_end: Callable[[StreamFlight], Awaitable[None]] | None = None,
    ) -> None:
        self._flight = flight
        self._on_end = on_end
        self._chunks = replay_chunks(replay) if replay is not None else []
        self._replayed = replay
        self._i = 0
        self._leader = leader
        self.cached = not leader
        self.model = replay.model if replay is not None else model
        self.response: Response | None = None

    @property
    def replayed(self) -> Response | None:
        """The stored answer this stream replays (a hit); ``None`` for a shared stream."""
        return self._replayed

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self

    async def __anext__(self) -> Chunk:
        fl = self._flight
        if fl is None:
            if self._i < len(self._chunks):
                self._i += 1
                return self._chunks[self._i - 1]
            self.response = self._replayed
            raise StopAsyncIteration
        while True:
            if self._i < len(fl.chunks):
                self._i += 1
                return fl.chunks[self._i - 1]
            if fl.finished:
                await self._end(fl)
            await fl.changed.wait()

    async def _end(self, fl: StreamFlight) -> NoReturn:
        if fl.error is not None:
            fl.raise_error(fl.error)
        if fl.response is None:
            raise CacheClosed("the cache closed before the shared stream finished")
        if self.response is None:
            self.response = fl.response if self._leader else as_shared(fl.response)
            self.model = fl.response.model
            if not fl.read_to_end:
                fl.read_to_end = True
                if self._on_end is not None:
                    await self._on_end(fl)
        raise StopAsyncIteration
