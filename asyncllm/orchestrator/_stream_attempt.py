"""The per-attempt pipeline for streams, with its commit point at the first token.

:class:`StreamAttempt` is one streamed attempt, opened and closed in one task:

- :meth:`~StreamAttempt.open` runs the same admission as a complete attempt (breaker,
  budget, limiter), opens the provider stream and reads up to the first chunk with content:
  the **commit point**. A failure before it is an ordinary attempt failure, so strategies
  may fall over.
- Iterating it yields the chunks read so far and then the rest. A failure after the commit
  point raises :class:`~asyncllm.StreamBroken` carrying the partial text: a committed
  stream is never silently truncated or restarted elsewhere.
- :meth:`~StreamAttempt.close` releases what is still held and leaves the attempt's cancel
  scope. When the stream ends on its own, the permit and reservation are settled and
  released right away, not when the caller leaves its ``async with``.

One cancel scope spans the attempt (entered before the provider's context manager and left
after it, so the two nest properly). Its deadline is the request's deadline while queueing,
then also the time-to-first-token and attempt timeouts once the request is sent.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import StreamBroken
from .._hooks import AttemptRole
from ..providers import StreamAccumulator
from ..quality import assess
from ._admission import Admission, LegEvents
from ._attempt import (
    attempt_failed,
    attempt_info,
    price,
    rate_limit_feedback,
    timeout_error,
    vet,
)
from ._retry import not_billed

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from .._types import Chunk, Response
    from ..providers import ProviderStream
    from ._runtime import Call, Leg

from ._runtime import loop_time

__all__ = ["StreamAttempt", "complete_via_stream"]

_Cancelled = anyio.get_cancelled_exc_class


class StreamAttempt:
    """One streamed attempt (see the module docstring)."""

    __slots__ = (
        "_admission",
        "_done",
        "_exhausted",
        "_it",
        "_pending",
        "_scope",
        "_stream",
        "_stream_cm",
        "acc",
        "call",
        "committed",
        "error",
        "events",
        "index",
        "info",
        "leg",
        "model",
        "probe",
        "response",
        "sent_at",
        "slot",
    )

    def __init__(
        self,
        call: Call,
        index: int,
        role: AttemptRole,
        number: int,
        leg: Leg | None = None,
        events: LegEvents | None = None,
    ) -> None:
        self.call = call
        self.index = index
        self.slot = call.rt.slots[index]
        self.model = call.models[index]
        self.leg = leg
        self.events = events
        self.info = attempt_info(call, index, role, number)
        self.probe = False
        self.sent_at: float | None = None
        self.committed = False
        self.response: Response | None = None
        #: What ended the stream after its commit point (broken, rejected), if anything.
        self.error: BaseException | None = None
        self.acc = StreamAccumulator()
        self._pending: deque[Chunk] = deque()
        self._exhausted = False
        self._done = False
        # No deadline of any kind: no cancel scope either (the plain path stays lean).
        self._scope: anyio.CancelScope | None = (
            None
            if call.deadline == math.inf
            and call.first_token_timeout is None
            and call.attempt_timeout is None
            else anyio.CancelScope(deadline=call.deadline)
        )
        self._admission = Admission(call, self.slot, self.model)
        self._stream_cm: AbstractAsyncContextManager[ProviderStream] | None = None
        self._stream: ProviderStream | None = None
        self._it: Any = None

    @property
    def provider(self) -> str:
        """Name of the provider this attempt runs on."""
        return self.slot.name

    @property
    def partial_text(self) -> str:
        """The text received so far."""
        return self.acc.text

    # -- opening: up to the commit point ------------------------------------------------

    async def open(self) -> None:
        """Admit, send, and read up to the first token. On failure, release and raise."""
        if self._scope is not None:
            self._scope.__enter__()
        try:
            await self._open()
        except BaseException as exc:
            error = await self._fail(exc)
            if error is exc:
                raise
            raise error from None

    async def _open(self) -> None:
        call, slot, model = self.call, self.slot, self.model
        rt = call.rt
        admission = self._admission
        try:
            self.sent_at = sent_at = await admission.enter(self.leg, self.events)
        finally:
            self.probe = admission.probe
        loop_now = loop_time()
        self.acc = StreamAccumulator()
        ttft, total = call.first_token_timeout, call.attempt_timeout
        scope = self._scope
        if scope is not None:
            scope.deadline = min(
                call.deadline,
                math.inf if ttft is None else loop_now + ttft,
                math.inf if total is None else loop_now + total,
            )
        scm = slot.provider.stream(call.request_for(slot))
        self._stream = await scm.__aenter__()
        self._stream_cm = scm
        it = self._it = self._stream.__aiter__()
        acc, pending = self.acc, self._pending
        while True:
            try:
                chunk = await it.__anext__()
            except StopAsyncIteration:
                self._exhausted = True
                break
            acc.add(chunk)
            pending.append(chunk)
            if chunk.text or chunk.tool_calls:
                break
        self.committed = True
        first = rt.clock()
        slot.window(model, True).add(first - sent_at)
        if scope is not None:
            scope.deadline = min(call.deadline, math.inf if total is None else loop_now + total)
        self.info.first_token_at = first
        rt.observer.attempt_first_token(self.info)

    async def _fail(self, exc: BaseException) -> BaseException:
        """Release after a failure before commit; return the error to raise."""
        scope = self._scope
        timed_out = scope is not None and isinstance(exc, _Cancelled()) and scope.cancel_called
        rate_limit_feedback(self.slot, self.model, exc)  # before the slot is given back
        await self._release(billed_unknown=not not_billed(exc))
        swallowed = scope is not None and scope.__exit__(type(exc), exc, exc.__traceback__)
        error: BaseException = exc
        if swallowed or timed_out:
            error = timeout_error(
                self.call, self.slot, self.model, "no first token in time (timeout)"
            )
        self._book(error)
        return error

    # -- iterating: after the commit point ----------------------------------------------

    def __aiter__(self) -> StreamAttempt:
        return self

    async def __anext__(self) -> Chunk:
        pending = self._pending
        if pending:
            return pending.popleft()
        if self._exhausted:
            if not self._done:
                await self._finish_ok()
            raise StopAsyncIteration
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            self._exhausted = True
            await self._finish_ok()
            raise
        except Exception as exc:
            error = self.error = self.broken(exc)
            await self._release(billed_unknown=True)
            self._book(error)
            raise error from (None if error is exc else exc)
        self.acc.add(chunk)
        return chunk  # type: ignore[no-any-return]

    def broken(self, exc: Exception) -> StreamBroken:
        """``exc`` as a :class:`~asyncllm.StreamBroken` carrying the text so far."""
        if isinstance(exc, StreamBroken):
            return exc
        acc = self.acc
        return StreamBroken(
            str(getattr(exc, "message", exc)) or type(exc).__name__,
            partial_text=acc.text,
            chunks_received=acc.chunks_received,
            provider=self.slot.name,
            model=self.model,
        )

    async def _finish_ok(self) -> None:
        call, slot, rt = self.call, self.slot, self.call.rt
        stream = self._stream
        assert stream is not None
        response = self.acc.response(
            provider=slot.name, model=stream.model or self.model, rate_limits=stream.rate_limits
        )
        usage = response.usage
        cost = price(call, slot, self.model, response)
        self._admission.book(usage, cost)
        response.cost_usd = cost
        response.request_id = call.request_id
        info = self.info
        info.usage = usage
        info.cost_usd = cost
        if not call.accept:
            info.quality = assess(call.request, response)
        else:
            try:
                # The whole answer is known only now: a rejection fails the attempt here
                # (its chunks were delivered already; docs/quality.md says what that means).
                await vet(call, slot, self.model, response, info, None)
            except BaseException as exc:
                self.error = exc
                await self._release(billed_unknown=False)
                self._book(exc)
                raise
        if self.events is not None and self.leg is not None:
            # A complete answer built from a stream wins here, before its slot is released
            # (for a stream the leg already won at its first token: a no-op then).
            self.events.answered(self.leg, response)
        await self._release(billed_unknown=False)
        self.response = response
        if response.rate_limits is not None:
            slot.limiter.observe(response.rate_limits, model=self.model)
        if slot.breaker is not None:
            slot.breaker.success(self.probe)
        info.finished = rt.clock()
        info.outcome = "success"
        rt.observer.attempt_finished(info, response, None)

    # -- closing -------------------------------------------------------------------------

    async def close(self, exc: BaseException | None) -> BaseException | None:
        """Release what is held and leave the attempt's scope.

        ``exc`` is what is leaving the caller's block (``None`` when it left normally).
        Returns the error to raise instead of it: when this attempt's own deadline cut the
        stream, a timeout (before commit) or a :class:`~asyncllm.StreamBroken` chained to
        it (after); otherwise ``None``.
        """
        scope = self._scope
        timed_out = (
            scope is not None
            and isinstance(exc, _Cancelled())
            and scope.cancel_called
            and self.response is None
        )
        error: BaseException | None = None
        if timed_out:
            cause = timeout_error(self.call, self.slot, self.model, "stream too slow (timeout)")
            error = self.broken(cause) if self.committed else cause
            if error is not cause:
                error.__cause__ = cause
        if not self._done:
            await self._release(billed_unknown=True)
            # Anything else leaving the caller's block (its own error, a cancellation, or
            # leaving early) abandons the stream: booked as cancelled (or lost).
            self._book(error if error is not None else _abandoned())
        if scope is None:
            pass
        elif exc is None:
            scope.__exit__(None, None, None)
        else:
            scope.__exit__(type(exc), exc, exc.__traceback__)
        return error

    async def _release(self, *, billed_unknown: bool) -> None:
        """Close the provider stream, then give back the permit and the reservation."""
        self._done = True
        # Once released, the attempt's deadline must not cut into the caller's own code.
        if self._scope is not None:
            self._scope.deadline = math.inf
        with anyio.CancelScope(shield=True):
            scm, self._stream_cm = self._stream_cm, None
            if scm is not None:
                await scm.__aexit__(None, None, None)
            # Then the permit and the reservation (settled first unless booked).
            await self._admission.give_back(billed_unknown)

    def _book(self, exc: BaseException) -> None:
        attempt_failed(
            self.call,
            self.slot,
            self.model,
            self.info,
            exc,
            self.probe,
            self.sent_at,
            self.leg,
            stream=True,
        )


def _abandoned() -> BaseException:
    # The caller left its ``async with`` before the end: book it like a cancellation.
    return _Cancelled()()


async def complete_via_stream(
    call: Call,
    index: int,
    role: AttemptRole,
    number: int,
    leg: Leg | None = None,
    events: LegEvents | None = None,
) -> Response:
    """A complete answer built by consuming a stream (used when a first-token timeout is
    set: only a stream shows the first token)."""
    attempt = StreamAttempt(call, index, role, number, leg, events)
    await attempt.open()
    try:
        async for _ in attempt:
            pass
    except BaseException as exc:
        replacement = await attempt.close(exc)
        if replacement is not None:
            raise replacement  # noqa: B904 (its cause is set: the deadline)
        raise
    replacement = await attempt.close(None)
    if replacement is not None:
        raise replacement
    assert attempt.response is not None
    return attempt.response
