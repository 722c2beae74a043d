"""``ClientHost``: one long-lived :class:`~asyncllm.Client` per Ray actor, opened and closed
by one task of its own.

Ray Data runs an async stage's batches as separate tasks on an event loop in a thread of
the actor. A client entered in the first batch's task would belong to a task that ends with
that batch (its cache's task group included), two first batches arriving together would
each build one, and nothing would close it when the actor goes. So the client lives in a
*host task*: it builds and enters the client, hands it to every batch, and leaves it when
asked to close, in the task that entered it.

Ray Data (2.46 and later) drops its stage instances when an actor exits gracefully
(``_MapWorker.__ray_shutdown__``, ray-project/ray#61700), which runs the stage's
``__del__`` on the actor's main thread while the loop thread still runs: :meth:`close`
then waits, from that thread, for the client to close (budget bookings, cache writes and
connections flushed and closed), at most :data:`CLOSE_TIMEOUT`. An actor killed outright
closes nothing; what was answered is in the rows already.

The host task holds only this object, never the stage, so dropping the stage is not
prevented by the task that keeps its client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._logging import get_logger

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["CLOSE_TIMEOUT", "ClientHost"]

#: Longest wait, when a stage is dropped, for its client to close.
CLOSE_TIMEOUT = 10.0

_log = get_logger("asyncllm.ray")


class ClientHost:
    """Builds, holds and closes one client in a task of its own.

    Args:
        build: Makes the (not yet entered) client; called once, in the host task.
    """

    __slots__ = ("_build", "_closing", "_loop", "_ready", "_task", "client")

    def __init__(self, build: Callable[[], Client]) -> None:
        self._build = build
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[Client] | None = None
        self._closing: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        #: The entered client, while it is open.
        self.client: Client | None = None

    async def get(self) -> Client:
        """The open client; the first call starts the host task, every call waits for it.

        Raises:
            Exception: What building or entering the client raised (to every caller).
        """
        if self._ready is None:
            loop = self._loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._closing = asyncio.Event()
            self._task = loop.create_task(self._hold(), name="asyncllm-ray-client")
        # Shielded: a batch cancelled while waiting must not cancel the client's opening.
        return await asyncio.shield(self._ready)

    async def _hold(self) -> None:
        ready, closing = self._ready, self._closing
        assert ready is not None and closing is not None
        try:
            client = self._build()
            async with client:
                self.client = client
                ready.set_result(client)
                await closing.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)  # the batches raise it; nothing left to close
                ready.exception()  # retrieved here too: no "never retrieved" warning
            else:
                _log.warning("ray.client_close_failed", error=type(exc).__name__)
        finally:
            self.client = None

    async def aclose(self) -> None:
        """Close the client (if one was opened) and wait until it is closed."""
        if self._closing is None or self._task is None:
            return
        self._closing.set()
        await asyncio.shield(self._task)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the client from another thread than its loop's, waiting at most ``timeout``
        seconds; on the loop's own thread (which cannot wait for itself) the closing is
        started and left to the loop. Does nothing once the loop stopped."""
        loop = self._loop
        if loop is None or self._task is None or self._task.done() or loop.is_closed():
            return
        if not loop.is_running():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            assert self._closing is not None
            self._closing.set()
            return
        future = asyncio.run_coroutine_threadsafe(self.aclose(), loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
