"""Run a short awaitable to completion even when the caller is being cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

import anyio

__all__ = ["Outcome", "run_shielded"]

T = TypeVar("T")


class Outcome(Generic[T]):
    """How a shielded call ended: its value or error, and any cancellation that arrived."""

    __slots__ = ("cancelled", "error", "value")

    def __init__(
        self,
        value: T | None,
        error: Exception | None,
        cancelled: asyncio.CancelledError | None,
    ) -> None:
        self.value = value
        self.error = error
        self.cancelled = cancelled


async def run_shielded(coro: Coroutine[Any, Any, T]) -> Outcome[T]:
    """Await ``coro`` to the end and report how it went; never raises for the call.

    The caller decides what to undo and must then re-raise ``outcome.cancelled``.

    An anyio shield alone stops anyio cancel scopes but not a bare ``task.cancel()`` on
    asyncio, and a Redis call interrupted half-way leaves it unknown whether a slot was
    granted or a refund applied. So the call runs as its own task (awaited right here, so
    it never outlives the caller) behind both shields.
    """
    task = asyncio.ensure_future(coro)
    cancelled: asyncio.CancelledError | None = None
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as e:
                if task.cancelled():  # the inner call itself was cancelled (loop closing)
                    raise
                cancelled = e
            except Exception:
                break  # read below
    error = task.exception()
    if error is None:
        return Outcome(task.result(), None, cancelled)
    if not isinstance(error, Exception):  # pragma: no cover - KeyboardInterrupt and such
        raise error
    return Outcome(None, error, cancelled)
