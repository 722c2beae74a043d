"""Fallback: one attempt at a time, in priority order, in the caller's own task.

No task group, no extra task: the plain single-provider path is one pipeline run. After an
error that fails over, :meth:`Call.plan_next` picks the next attempt (a provider not tried
yet at once, else a retry after backoff); anything else is raised as it is.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from .._exceptions import DeadlineExceeded
from .._hooks import AttemptRole
from ._complete import attempt_for
from ._retry import fails_over
from ._stream_attempt import StreamAttempt

if TYPE_CHECKING:
    from .._types import Response
    from ._runtime import Call

__all__ = ["SequentialStream", "complete_fallback", "pause"]

_PRIMARY: AttemptRole = "primary"


async def pause(call: Call, seconds: float) -> None:
    """Wait ``seconds`` before a retry, within the request's deadline."""
    with anyio.CancelScope(deadline=call.deadline) as scope:
        await anyio.sleep(seconds)
    if scope.cancelled_caught:
        raise DeadlineExceeded(f"request {call.request_id} passed its deadline while backing off")


async def complete_fallback(call: Call) -> Response:
    """Run ``call`` with the fallback strategy."""
    attempt = attempt_for(call)
    index, role = 0, _PRIMARY
    number = call.begin(0)
    while True:
        try:
            return await attempt(call, index, role, number, None, None)
        except Exception as exc:
            if not fails_over(exc):
                raise
            call.failed(index, exc)
        plan = call.plan_next()
        if plan is None:
            raise call.all_failed()
        index, role, wait = plan
        number = call.attempts
        if wait > 0:
            await pause(call, wait)


class SequentialStream:
    """A fallback stream: attempts one after another until one commits (first token).

    Entering returns the committed :class:`StreamAttempt` (an async iterator of chunks);
    leaving closes it. Everything happens in the caller's task.
    """

    __slots__ = ("attempt", "call")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.attempt: StreamAttempt | None = None

    @property
    def response(self) -> Response | None:
        """The assembled response, once the stream was consumed to its end."""
        return None if self.attempt is None else self.attempt.response

    @property
    def error(self) -> BaseException | None:
        """What ended the committed stream (broken, rejected), if anything."""
        return None if self.attempt is None else self.attempt.error

    async def __aenter__(self) -> StreamAttempt:
        call = self.call
        index, role = 0, _PRIMARY
        number = call.begin(0)
        while True:
            attempt = StreamAttempt(call, index, role, number)
            try:
                await attempt.open()
            except Exception as exc:
                if not fails_over(exc):
                    raise
                call.failed(index, exc)
            else:
                self.attempt = attempt
                return attempt
            plan = call.plan_next()
            if plan is None:
                raise call.all_failed()
            index, role, wait = plan
            number = call.attempts
            if wait > 0:
                await pause(call, wait)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        attempt = self.attempt
        if attempt is None:
            return
        replacement = await attempt.close(exc)
        if replacement is not None:
            raise replacement  # its cause (the deadline) is set; ``exc`` is the context
