"""Race and hedge: several attempts (legs) at once; the first success wins.

One :class:`Engine` runs a logical request's legs in a task group it owns and finishes
before returning, so no task outlives the call. Legs report to the engine's loop through a
small queue (admitted / won / error); the loop:

- on **won** (complete: a response; stream: the first token) stops: every other leg is
  marked lost and cancelled (its provider stream is closed by its own ``async with``);
- on a **failure that fails over**, starts a replacement (a provider not tried yet at
  once, else a retry after backoff, within the attempt cap and retry allowance); a hedge's
  replacement takes the place of its next backup, so errors fire the next one at once;
- on any **other error** cancels everything and raises it;
- for **hedges**, fires a backup when the latest leg has been *admitted by the limiter*
  for ``delay`` seconds (the primary) or ``stagger`` seconds (a backup) without winning,
  if the hedge allowance has a token. A leg queued in the limiter has not "fired": its timer
  has not started. A backup is *scheduled* when its token is taken and *sent* when its
  request goes to the provider; one cancelled before that (the primary won meanwhile, or it
  waited in the limiter or the budget) gets its token back and is not counted as a hedge
  (``counters``: ``hedge_scheduled``, ``hedge`` = sent, ``hedge_unsent``). So a saturated
  limiter never turns into a hedge storm, the allowance bounds load that really went out,
  and a backup waiting for a slot the primary holds cannot deadlock anything (the primary
  never waits for it; whichever ends first cancels the other).

For streams the winning leg keeps running after it wins: it pumps its chunks into the
consumer's memory stream (see :class:`ConcurrentStream` in ``_concurrent_stream.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import BudgetExceeded
from .._hooks import AttemptRole
from ._complete import attempt_for
from ._policy import Hedge, Race
from ._retry import fails_over
from ._runtime import Leg
from ._stream_attempt import StreamAttempt

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectSendStream

    from .._types import Response
    from ._runtime import Call

from ._runtime import loop_time

__all__ = ["COMMITTED", "End", "Engine"]

#: First item of a raced stream's channel: a leg committed.
COMMITTED = object()


class End:
    """Last item of a raced stream's channel: the assembled response."""

    __slots__ = ("response",)

    def __init__(self, response: Response | None) -> None:
        self.response = response


class Engine:
    """Runs one logical request with a race or hedge strategy (see the module docstring).

    Args:
        call: The logical request.
        strategy: ``Race`` or ``Hedge``.
        sink: For streams, the consumer's channel (chunks, then :class:`End` or an error).
    """

    def __init__(
        self, call: Call, strategy: Race | Hedge, sink: MemoryObjectSendStream[Any] | None = None
    ) -> None:
        self.call = call
        self.sink = sink
        self.attempt = attempt_for(call)
        rt = call.rt
        n = len(rt.slots)
        self.busy = [0] * n
        self.in_flight = 0
        self.legs: list[Leg] = []
        self.events: deque[tuple[Leg, str, Any]] = deque()
        self.wake = anyio.Event()
        self.winner: Leg | None = None
        self.result: Response | None = None
        self.winner_attempt: StreamAttempt | None = None
        self.terminal_sent = False
        self.fatal: Exception | None = None
        self.last_index = 0
        self._tg: TaskGroup | None = None
        if isinstance(strategy, Hedge):
            self.hedge: Hedge | None = strategy
            self.hedges_left = strategy.max_attempts - 1
            self.bucket = rt.hedge_bucket(strategy)
            self.bucket.deposit()
            self.delay = self._hedge_delay(strategy)
            self.stagger: float | None = (
                None if strategy.stagger in (None, "adaptive") else float(strategy.stagger)
            )
            self.initial = 1
        else:
            self.hedge = None
            self.hedges_left = 0
            self.delay = math.inf
            self.initial = n if strategy.n is None else min(n, strategy.n)

    def _hedge_delay(self, hedge: Hedge) -> float:
        if not hedge.adaptive:
            return float(hedge.delay)
        call = self.call
        window = call.rt.slots[0].window(call.models[0], call.stream)
        if len(window) < hedge.min_samples:
            return hedge.initial_delay
        q = window.quantile(hedge.delay_quantile)
        return max(hedge.min_delay, q if q is not None else hedge.initial_delay)

    def _stagger_after(self, leg: Leg) -> float:
        """How long backup ``leg`` runs unanswered before the next backup."""
        if self.stagger is not None:
            return self.stagger
        hedge = self.hedge
        assert hedge is not None
        if hedge.stagger is None:
            return self.delay
        call = self.call
        # The backup's provider once it has 4x min_samples latencies, else the primary's
        # once it has min_samples. A provider that only serves backups learns slowly, and
        # its window is mostly censored (backups lose early): from ~50 samples its p90
        # often lands in the slow mode, which would push later backups past the tail.
        for i, needed in ((leg.index, 4 * hedge.min_samples), (0, hedge.min_samples)):
            window = call.rt.slots[i].window(call.models[i], call.stream)
            if len(window) >= needed:
                q = window.quantile(hedge.stagger_quantile)
                if q is not None:
                    return max(hedge.min_delay, q)
        return self.delay

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> Response | None:
        """Run to a winner (returns its response; for streams, once its pump ended)."""
        call = self.call
        async with anyio.create_task_group() as tg:
            self._tg = tg
            role: AttemptRole = "primary" if self.hedge is not None else "race"
            for i in range(self.initial):
                self._start(i, role, call.begin(i), 0.0)
            await self._loop()
        if self.fatal is not None:
            raise self.fatal
        if self.winner is None:
            raise call.all_failed()
        return self.result

    async def _loop(self) -> None:
        while True:
            events = self.events
            while events:
                leg, kind, value = events.popleft()
                if kind == "won":
                    return
                if kind == "error":
                    self._failed(leg, value)
                    if self.fatal is not None:
                        return
            if self.in_flight == 0:
                return
            due = self._hedge_due()
            if due is not None and due <= loop_time():
                self._fire_hedge()
                continue
            if not events:
                self.wake = anyio.Event()
                with anyio.move_on_after(math.inf if due is None else due - loop_time()):
                    await self.wake.wait()

    def _post(self, leg: Leg, kind: str, value: Any) -> None:
        self.events.append((leg, kind, value))
        self.wake.set()

    # -- LegEvents: what each leg's attempt tells the engine --------------------------------

    def admitted(self, leg: Leg) -> None:
        """Admitted, not cancelled, and about to call the provider: the request is sent."""
        leg.admitted_at = loop_time()
        if leg.role == "hedge":
            self.call.rt.counters["hedge"] += 1
        self._post(leg, "admitted", None)

    def answered(self, leg: Leg, response: Response) -> None:
        """An accepted answer: it wins unless another leg already did."""
        if self._claim(leg):
            self.result = response

    def _failed(self, leg: Leg, exc: Exception) -> None:
        if self.winner is not None:
            return  # decided already: nothing to replace, nothing to raise
        if not fails_over(exc):
            if isinstance(exc, BudgetExceeded) and self.in_flight > 0:
                # An extra leg (a backup, or a race's other entrant) the spend budget cannot fit:
                # go on with the legs already running and start no more. Only when no leg
                # is left does the refusal decide the request.
                self.call.errors.append(exc)
                self.hedges_left = 0
                return
            self.fatal = exc
            self._cancel_others(None, lost=False)
            return
        call = self.call
        call.failed(leg.index, exc)
        plan = call.plan_next([b > 0 for b in self.busy])
        if plan is None:
            return
        index, role, wait = plan
        if self.hedge is not None and self.hedges_left > 0:
            self.hedges_left -= 1  # the replacement takes the next backup's place
        self._start(index, role, call.attempts, wait)

    def _hedge_due(self) -> float | None:
        if self.hedges_left <= 0 or self.winner is not None:
            return None
        latest = None
        for leg in reversed(self.legs):
            if not leg.done:
                latest = leg
                break
        if latest is None or latest.admitted_at is None:
            return None
        wait = self._stagger_after(latest) if latest.role == "hedge" else self.delay
        return latest.admitted_at + wait

    def _fire_hedge(self) -> None:
        self.hedges_left -= 1
        if not self.bucket.try_spend():
            self.hedges_left = 0
            return
        index = self.call.plan_hedge([b > 0 for b in self.busy], self.last_index)
        if index is None:
            self.bucket.refund()
            self.hedges_left = 0
            return
        self.call.rt.counters["hedge_scheduled"] += 1
        self._start(index, "hedge", self.call.attempts, 0.0).charged = True

    def _start(self, index: int, role: AttemptRole, number: int, wait: float) -> Leg:
        leg = Leg(index, role, number, wait)
        self.legs.append(leg)
        self.in_flight += 1
        self.busy[index] += 1
        self.last_index = index
        assert self._tg is not None
        if self.sink is None:
            self._tg.start_soon(self._complete_leg, leg)
        else:
            self._tg.start_soon(self._stream_leg, leg)
        return leg

    def _leg_done(self, leg: Leg) -> None:
        leg.done = True
        self.in_flight -= 1
        self.busy[leg.index] -= 1
        if leg.charged and leg.admitted_at is None:
            self.bucket.refund()  # never went out: not a backup request after all
            self.call.rt.counters["hedge_unsent"] += 1

    def _claim(self, leg: Leg) -> bool:
        """Make ``leg`` the winner unless another leg already is; cancel the others."""
        if self.winner is not None or self.fatal is not None:
            return False
        self.winner = leg
        self._cancel_others(leg, lost=True)
        self._post(leg, "won", None)
        return True

    def _cancel_others(self, keep: Leg | None, *, lost: bool) -> None:
        for other in self.legs:
            if other is not keep and not other.done:
                other.lost = lost
                other.scope.cancel()

    # -- legs -----------------------------------------------------------------------------

    async def _complete_leg(self, leg: Leg) -> None:
        try:
            with leg.scope:
                if leg.wait > 0:
                    await anyio.sleep(leg.wait)
                try:
                    await self.attempt(self.call, leg.index, leg.role, leg.number, leg, self)
                except Exception as exc:
                    self._post(leg, "error", exc)
        finally:
            self._leg_done(leg)

    async def _stream_leg(self, leg: Leg) -> None:
        try:
            with leg.scope:
                if leg.wait > 0:
                    await anyio.sleep(leg.wait)
                attempt = StreamAttempt(self.call, leg.index, leg.role, leg.number, leg, self)
                try:
                    await attempt.open()
                except Exception as exc:
                    self._post(leg, "error", exc)
                    return
                if not self._claim(leg):
                    leg.lost = True
                    await attempt.close(None)
                    return
                self.winner_attempt = attempt
                await self._pump(attempt)
        finally:
            self._leg_done(leg)

    async def _pump(self, attempt: StreamAttempt) -> None:
        sink = self.sink
        assert sink is not None
        await self.deliver(COMMITTED, terminal=False)
        try:
            async for chunk in attempt:
                await sink.send(chunk)
        except anyio.get_cancelled_exc_class() as exc:
            replacement = await attempt.close(exc)
            if replacement is None:
                raise
            await self.deliver(replacement)
            return
        except Exception as exc:
            await attempt.close(exc)
            await self.deliver(exc)
            return
        await attempt.close(None)
        await self.deliver(End(attempt.response))

    async def deliver(self, item: Any, *, terminal: bool = True) -> None:
        """Send ``item`` to the consumer; after a terminal item, send nothing more.

        Shielded: the final error must reach the consumer even when it is sent from a
        cancelled scope (a deadline). It cannot hang: the consumer closes its end before
        it waits for this task.
        """
        if self.terminal_sent or self.sink is None:
            return
        # A consumer that left has nothing more to be told.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            try:
                self.sink.send_nowait(item)
            except anyio.WouldBlock:
                with anyio.CancelScope(shield=True):
                    await self.sink.send(item)
        self.terminal_sent = terminal
