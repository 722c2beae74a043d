"""Fan-out: many requests, ``concurrency`` at a time, results as they finish.

``client.map(requests)`` returns a :class:`FanOut`, an async context manager::

    async with client.map(prompts, concurrency=32) as results:
        async for result in results:
            print(result.index, result.response.text if result.ok else result.error)

- The input is read lazily, from any iterable or async iterable, one item each time a
  worker is free: 100,000 requests (or an endless generator) run in bounded memory.
- A failed request yields a :class:`Result` carrying its error; the others go on.
- ``ordered=True`` yields results in input order. The look-ahead stays bounded: a worker
  does not take item ``i`` until item ``i - lookahead`` has been yielded, so one slow
  request holds back at most ``lookahead`` finished results.
- Leaving the ``async with`` by any path (the loop finished, ``break``, an exception,
  cancellation of the caller) cancels every request still in flight and waits for them,
  closing their provider streams. Iterating without entering is an error, because only the
  context manager can promise that nothing is left running.

The workers run in a task group held by the context manager (entered in ``__aenter__``,
closed in ``__aexit__``), never across the ``yield`` of an async generator.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._types import Response

__all__ = ["FanOut", "Result"]


@dataclass(slots=True)
class Result:
    """The outcome of one request of a fan-out.

    Attributes:
        index: Position of the request in the input (0-based).
        request: The input item as it was given (a prompt, messages, a ``ChatRequest``).
        response: The response, when the request succeeded.
        error: The error, when it failed.
    """

    index: int
    request: Any
    response: Response | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error is None

    def unwrap(self) -> Response:
        """The response, or raise the request's error."""
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


class _InputFailed:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class FanOut:
    """Runs ``run(item)`` for every input item with bounded concurrency (see module doc).

    Args:
        run: Runs one item to a response (the client's strategy, cache and all).
        items: An iterable or async iterable of items.
        concurrency: Requests in flight at most.
        ordered: Yield results in input order.
        lookahead: With ``ordered``, how far past the oldest unfinished item workers may
            start (default ``2 * concurrency``).
    """

    def __init__(
        self,
        run: Callable[[Any], Awaitable[Response]],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        ordered: bool = False,
        lookahead: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if lookahead is not None and lookahead < concurrency:
            raise ConfigurationError("lookahead must be at least concurrency")
        self._run = run
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        elif isinstance(items, Iterable):
            self._sync = iter(items)
        else:
            raise ConfigurationError(
                f"map() needs an iterable or async iterable, got {type(items).__name__}"
            )
        self.concurrency = concurrency
        self.ordered = ordered
        self.lookahead = lookahead or 2 * concurrency
        self._taken = 0
        self._emitted = 0
        self._exhausted = False
        self._moved = anyio.Event()
        self._lock = anyio.Lock()
        self._pending: dict[int, Result] = {}
        self._tg: TaskGroup | None = None
        self._recv: MemoryObjectReceiveStream[Result | _InputFailed] | None = None
        self._entered = False

    async def __aenter__(self) -> FanOut:
        if self._entered:
            raise RuntimeError("a FanOut can be entered only once")
        self._entered = True
        send, recv = anyio.create_memory_object_stream[Result | _InputFailed](self.concurrency)
        self._recv = recv
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        with send:
            for _ in range(self.concurrency):
                tg.start_soon(self._worker, send.clone())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        if self._recv is not None:
            self._recv.close()
        if tg is None:
            return
        tg.cancel_scope.cancel()
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            await tg.__aexit__(exc_type, exc, tb)
        else:
            await tg.__aexit__(None, None, None)

    # -- workers --------------------------------------------------------------------------

    async def _take(self) -> tuple[int, Any] | None:
        """The next input item and its index, or ``None`` when the input is exhausted."""
        while self.ordered and self._taken - self._emitted >= self.lookahead:
            await self._moved.wait()
        if self._exhausted:
            return None
        if self._sync is not None:
            try:
                item = next(self._sync)
            except StopIteration:
                self._exhausted = True
                return None
        else:
            assert self._async is not None
            try:
                item = await anext(self._async)
            except StopAsyncIteration:
                self._exhausted = True
                return None
        index = self._taken
        self._taken += 1
        return index, item

    async def _worker(self, send: MemoryObjectSendStream[Result | _InputFailed]) -> None:
        with send:
            while True:
                try:
                    if self._async is not None:
                        async with self._lock:  # an async iterator is not re-entrant
                            taken = await self._take()
                    else:
                        taken = await self._take()
                except Exception as exc:  # the caller's input raised: stop feeding
                    self._exhausted = True
                    await self._send(send, _InputFailed(exc))
                    return
                if taken is None:
                    return
                index, item = taken
                try:
                    result = Result(index, item, response=await self._run(item))
                except Exception as exc:
                    result = Result(index, item, error=exc)
                if not await self._send(send, result):
                    return

    @staticmethod
    async def _send(
        send: MemoryObjectSendStream[Result | _InputFailed], item: Result | _InputFailed
    ) -> bool:
        """Hand ``item`` to the consumer; ``False`` when the consumer has left."""
        try:
            await send.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    # -- consumer -------------------------------------------------------------------------

    def __aiter__(self) -> FanOut:
        if self._recv is None:
            raise RuntimeError(
                "use `async with client.map(...) as results: async for r in results: ...` "
                "(the context manager cancels what is still running when you leave)"
            )
        return self

    async def __anext__(self) -> Result:
        recv = self._recv
        if recv is None:
            raise StopAsyncIteration
        while True:
            if self.ordered:
                ready = self._pending.pop(self._emitted, None)
                if ready is not None:
                    self._emitted += 1
                    self._moved.set()
                    self._moved = anyio.Event()
                    return ready
            try:
                item = await recv.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise StopAsyncIteration from None
            if isinstance(item, _InputFailed):
                raise item.error
            if not self.ordered:
                self._emitted += 1
                return item
            self._pending[item.index] = item

    @property
    def ready(self) -> int:
        """Results finished and waiting for the consumer (the next ``__anext__`` returns
        one of them without waiting on a request when this is not 0)."""
        recv = self._recv
        held = self._pending.get(self._emitted) is not None if self.ordered else False
        return held + (recv.statistics().current_buffer_used if recv is not None else 0)

    def statistics(self) -> dict[str, Any]:
        """Items taken from the input, results yielded, results held for ordering."""
        return {
            "taken": self._taken,
            "emitted": self._emitted,
            "held": len(self._pending),
            "exhausted": self._exhausted,
        }
