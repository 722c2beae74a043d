"""``Admission``: what lets one attempt reach its provider, taken and given back in one place.

Every attempt, complete or streamed, whatever its role, is admitted the same way::

    breaker.acquire() -> budget.reserve(worst case) -> limiter.acquire(tokens)

entered in that order and left in reverse (permit, then reservation), in the task that
entered, shielded from cancellation. A permit or reservation context manager whose class
sets ``sync_exit = True`` declares that its ``__aexit__`` never suspends (the in-process
ones: nothing to wait for, so nothing can interrupt them); when both do, the shield scope
is skipped. The no-op defaults (:class:`~asyncllm.abc.NoBudget`,
:class:`~asyncllm.abc.NoLimiter`, exactly those classes) take nothing and are not
called. (Two context managers held by hand rather than an ``AsyncExitStack``: the same
order for a fraction of its cost per attempt.)

In between, the attempt books what it used
(:meth:`Admission.book`: the real usage to the permit, the real cost to the reservation), or
leaves without booking and :meth:`Admission.release` settles for it: nothing used when the
provider surely generated nothing (never sent, or an error status at open), unknown
otherwise (the limiter and the budget keep the worst case).

A concurrent strategy is told about its legs by name (:class:`LegEvents`): ``admitted``
when the attempt is about to be sent, ``answered`` when it has an accepted answer.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

import anyio
from anyio.lowlevel import checkpoint_if_cancelled

from .._hooks import NoBudget, NoLimiter
from .._types import Usage

if TYPE_CHECKING:
    from .._hooks import Permit, Reservation
    from .._types import Response
    from ._runtime import Call, Leg, ProviderSlot

__all__ = ["ZERO_USAGE", "Admission", "LegEvents"]

ZERO_USAGE = Usage()


class LegEvents(Protocol):
    """What a concurrent strategy (race, hedge) is told about one of its legs.

    Named calls, in this order, each at most once per attempt.
    """

    def admitted(self, leg: Leg) -> None:
        """The limiter admitted the attempt and it is about to call the provider (a hedge's
        delay is measured from here, not from while it queued)."""
        ...

    def answered(self, leg: Leg, response: Response) -> None:
        """The attempt got an accepted answer. Called while it still holds its limiter
        slot, so a race's or hedge's losers are cancelled before that slot passes to one of
        them."""
        ...


class Admission:
    """One attempt's breaker probe, budget reservation and limiter permit.

    Args:
        call: The logical request.
        slot: The provider slot the attempt runs on.
        model: The model the attempt asks for (resolved once, in the call).
    """

    __slots__ = (
        "_booked",
        "_permit_cm",
        "_res_cm",
        "call",
        "model",
        "permit",
        "probe",
        "reservation",
        "sent_at",
        "slot",
    )

    def __init__(self, call: Call, slot: ProviderSlot, model: str) -> None:
        self.call = call
        self.slot = slot
        self.model = model
        self.probe = False
        self.reservation: Reservation | None = None
        self.permit: Permit | None = None
        #: When the attempt was sent (the client's clock); ``None``: never sent.
        self.sent_at: float | None = None
        self._res_cm: AbstractAsyncContextManager[Reservation] | None = None
        self._permit_cm: AbstractAsyncContextManager[Permit] | None = None
        self._booked = False

    async def enter(self, leg: Leg | None = None, events: LegEvents | None = None) -> float:
        """Take the breaker probe, the reservation and the permit; return the send time.

        Raises what refused (``CircuitOpen``, ``BudgetExceeded``...) after giving back what
        was taken; a cancellation while queued takes nothing.
        """
        call, slot, model = self.call, self.slot, self.model
        rt = call.rt
        if slot.breaker is not None:
            self.probe = slot.breaker.acquire()
        budget = rt.budget
        if budget.__class__ is not NoBudget:  # the no-op default takes nothing: skipped
            rcm = budget.reserve(
                call.request_for(slot),
                provider=slot.name,
                kind=slot.kind,
                model=model,
                local=slot.local,
            )
            self.reservation = await rcm.__aenter__()
            self._res_cm = rcm
        limiter = slot.limiter
        if limiter.__class__ is not NoLimiter:
            pcm = limiter.acquire(call.tokens_for(slot), model=model)
            self.permit = await pcm.__aenter__()
            self._permit_cm = pcm
        if events is not None and leg is not None:
            # A leg that lost while it queued is not sent (nor charged).
            await checkpoint_if_cancelled()
            self.sent_at = sent_at = rt.clock()
            events.admitted(leg)
        else:
            self.sent_at = sent_at = rt.clock()
        return sent_at

    def book(self, usage: Usage | None, cost_usd: float | None) -> None:
        """Record what the attempt really used (``None``: unknown, the worst case stays)."""
        if self.permit is not None:
            self.permit.settle(usage)
        if self.reservation is not None:
            self.reservation.settle(cost_usd)
        self._booked = True

    async def release(self, *, billed_unknown: bool) -> None:
        """Give everything back, in reverse order, shielded; settle first if not booked.

        ``billed_unknown``: the provider may have generated (and billed) something, so an
        unbooked attempt keeps its worst case; else it used nothing. No shield scope is
        needed when both context managers say their exit never suspends (``sync_exit``).
        """
        pcm, rcm = self._permit_cm, self._res_cm
        if pcm is None and rcm is None:
            return
        if (pcm is None or _sync_exit(type(pcm))) and (rcm is None or _sync_exit(type(rcm))):
            # Neither exit ever suspends, so no cancellation can reach them: no shield
            # scope needed (a few µs, a fifth of the plain path's cost per request).
            await self.give_back(billed_unknown)
            return
        with anyio.CancelScope(shield=True):
            await self.give_back(billed_unknown)

    async def give_back(self, billed_unknown: bool) -> None:
        """:meth:`release` for a caller that shields it already (a no-op when nothing is
        held)."""
        pcm, rcm = self._permit_cm, self._res_cm
        if pcm is None and rcm is None:
            return
        self._permit_cm = self._res_cm = None
        if not self._booked:
            self._booked = True
            if self.permit is not None:
                self.permit.settle(None if billed_unknown else ZERO_USAGE)
            if self.reservation is not None:
                nothing = self.sent_at is None or not billed_unknown
                self.reservation.settle(0.0 if nothing else None)
        if pcm is not None:
            await pcm.__aexit__(None, None, None)
        if rcm is not None:
            await rcm.__aexit__(None, None, None)


_SYNC_EXIT: dict[type, bool] = {}


def _sync_exit(cls: type) -> bool:
    """Whether ``cls.__aexit__`` never suspends: ``sync_exit = True`` declared by the very
    class that defines the ``__aexit__`` in use (a subclass that overrides ``__aexit__``
    must say so again; inheriting the flag is not enough). Cached per class."""
    known = _SYNC_EXIT.get(cls)
    if known is None:
        owner = next((k for k in cls.__mro__ if "__aexit__" in vars(k)), None)
        known = _SYNC_EXIT[cls] = owner is not None and vars(owner).get("sync_exit") is True
    return known
