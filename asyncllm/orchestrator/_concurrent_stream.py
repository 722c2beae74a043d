"""A raced or hedged stream, delivered through a memory object stream.

The racing legs run in a task group owned by :class:`ConcurrentStream`: entered in
``__aenter__`` and closed in ``__aexit__``, in the caller's task, never held open across a
``yield`` of an async generator. The winning leg pumps its chunks into a bounded memory
stream (back-pressure: a slow consumer slows the pump, never buffers without limit) and the
caller's ``async for`` reads from it. Leaving the ``async with`` by any path cancels and
awaits everything, closing every provider stream.

Child tasks never raise into the group (every error is delivered through the channel), so
the caller's own code inside the ``async with`` is never cancelled by a leg's failure.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import DeadlineExceeded, StreamBroken
from .._types import Chunk
from ._engine import COMMITTED, End, Engine

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._types import Response
    from ._policy import Hedge, Race
    from ._runtime import Call

__all__ = ["ConcurrentStream"]

#: Chunks buffered between the winning leg and a consumer that lags behind.
BUFFER = 64


class ConcurrentStream:
    """``async with`` → an async iterator of the winning leg's chunks.

    Entering waits for a leg to commit (its first token) and raises the request's error if
    none does (``AllProvidersFailed``, ``DeadlineExceeded``, a bad request...).
    """

    __slots__ = ("_recv", "_tg", "call", "engine", "error", "response")

    def __init__(self, call: Call, strategy: Race | Hedge) -> None:
        self.call = call
        self.engine = Engine(call, strategy)
        self.response: Response | None = None
        #: What ended the committed stream (broken, rejected), if anything.
        self.error: BaseException | None = None
        self._tg: TaskGroup | None = None
        self._recv: MemoryObjectReceiveStream[Any] | None = None

    async def __aenter__(self) -> ConcurrentStream:
        send, recv = anyio.create_memory_object_stream[Any](BUFFER)
        self._recv = recv
        self.engine.sink = send
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            tg.start_soon(self._drive, send)
            first = await recv.receive()
        except BaseException as exc:
            await self._shutdown(exc)
            raise
        if first is not COMMITTED:
            await self._shutdown(None)
            if isinstance(first, BaseException):
                raise first
            raise StreamBroken("the stream ended before it started")  # pragma: no cover
        return self

    async def _drive(self, send: MemoryObjectSendStream[Any]) -> None:
        engine, call = self.engine, self.call
        with send:
            try:
                with anyio.CancelScope(deadline=call.deadline) as scope:
                    await engine.run()
                if scope.cancelled_caught:
                    error: Exception = DeadlineExceeded(
                        f"request {call.request_id} passed its deadline"
                    )
                    attempt = engine.winner_attempt
                    if attempt is not None:
                        error = attempt.broken(error)
                    await engine.deliver(error)
            except Exception as exc:
                await engine.deliver(exc)

    @property
    def provider(self) -> str | None:
        """The winning provider, once a leg committed."""
        attempt = self.engine.winner_attempt
        return None if attempt is None else attempt.provider

    @property
    def model(self) -> str | None:
        """The winning leg's model, once a leg committed."""
        attempt = self.engine.winner_attempt
        return None if attempt is None else attempt.model

    def __aiter__(self) -> ConcurrentStream:
        return self

    async def __anext__(self) -> Chunk:
        recv = self._recv
        if recv is None:
            raise RuntimeError("iterate the stream inside its `async with` block")
        try:
            item = await recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if item.__class__ is Chunk:
            return item
        if isinstance(item, End):
            self.response = item.response
            recv.close()
            raise StopAsyncIteration
        self.error = item
        raise item

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown(exc if isinstance(exc, anyio.get_cancelled_exc_class()) else None)

    async def _shutdown(self, exc: BaseException | None) -> None:
        """Cancel whatever still runs and wait for it (closing every provider stream)."""
        tg, self._tg = self._tg, None
        if self._recv is not None:
            self._recv.close()
        if tg is None:
            return
        tg.cancel_scope.cancel()
        if exc is None or not isinstance(exc, anyio.get_cancelled_exc_class()):
            await tg.__aexit__(None, None, None)
        else:
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
