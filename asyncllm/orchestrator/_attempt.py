"""The per-attempt pipeline for complete (non-streamed) answers.

Every attempt, whatever its role (primary, retry, hedge, fallback, race), goes through::

    breaker check -> budget.reserve -> limiter.acquire -> provider.complete
        -> pricing.cost -> permit.settle(usage) / reservation.settle(cost)

with the observer told at the start and the end. Slots are released by the ``async with``
blocks, in this task, on every path including cancellation. On failure the permit and the
reservation are settled with "nothing used" when the provider surely generated nothing (an
error status at open) and "unknown" otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import checkpoint_if_cancelled

from .._exceptions import CircuitOpen, DeadlineExceeded, ProviderTimeout, RateLimited
from .._hooks import AttemptInfo, AttemptRole
from .._types import Response, Usage
from ._retry import not_billed, trips_breaker

if TYPE_CHECKING:
    from ._runtime import Call, Leg, ProviderSlot

from ._runtime import loop_time

__all__ = ["ZERO_USAGE", "attempt_failed", "attempt_info", "run_attempt", "timeout_error"]

ZERO_USAGE = Usage()

#: ``notify(leg, None)`` when the limiter admitted the attempt; ``notify(leg, response)``
#: when it succeeded, still holding its limiter slot, so a race's or hedge's losers are
#: cancelled before that slot passes to one of them.
Notify = Callable[["Leg", "Response | None"], None]


def attempt_info(call: Call, index: int, role: AttemptRole, number: int) -> AttemptInfo:
    """Start an attempt's record and tell the observer."""
    rt = call.rt
    slot = rt.slots[index]
    info = AttemptInfo(
        call.request_id, slot.name, slot.kind, call.models[index], number, role, rt.clock()
    )
    counters = rt.counters
    counters["attempts"] += 1
    if role != "hedge":  # a backup counts once sent (the hedge engine's ``_notified``)
        counters[role] += 1
    rt.observer.attempt_started(info)
    return info


def timeout_error(call: Call, slot: ProviderSlot, model: str, what: str) -> Exception:
    """The error for an attempt cut short by a deadline: the call's, or the attempt's own."""
    if loop_time() >= call.deadline:
        return DeadlineExceeded(
            f"request {call.request_id} passed its deadline after {call.attempts} attempt(s)"
        )
    return ProviderTimeout(what, provider=slot.name, model=model)


async def run_attempt(
    call: Call,
    index: int,
    role: AttemptRole,
    number: int,
    leg: Leg | None = None,
    notify: Notify | None = None,
) -> Response:
    """Run one attempt on slot ``index`` and return its response (or raise its error).

    ``leg``/``notify`` are given by concurrent strategies (see :data:`Notify`): the hedge
    timer starts at admission, not while the attempt queues in the limiter.
    """
    rt = call.rt
    if rt.first_token_timeout is not None:
        # Only a stream shows the first token: enforce the limit by consuming one.
        from ._stream import complete_via_stream

        return await complete_via_stream(call, index, role, number, leg, notify)
    slot = rt.slots[index]
    model = call.models[index]
    info = attempt_info(call, index, role, number)
    breaker = slot.breaker
    probe = False
    sent_at: float | None = None
    clock = rt.clock
    try:
        if breaker is not None:
            probe = breaker.acquire()
        async with rt.budget.reserve(
            call.request, provider=slot.name, kind=slot.kind, model=model, local=slot.local
        ) as reservation:
            try:
                async with slot.limiter.acquire(call.tokens, model=model) as permit:
                    if notify is not None and leg is not None:
                        # A leg that lost while it queued is not sent (nor charged).
                        await checkpoint_if_cancelled()
                        sent_at = clock()
                        notify(leg, None)
                    else:
                        sent_at = clock()
                    try:
                        response = await _call_provider(call, slot, model)
                    except BaseException as exc:
                        permit.settle(ZERO_USAGE if not_billed(exc) else None)
                        rate_limit_feedback(slot, model, exc)
                        raise
                    done_at = clock()
                    if notify is not None and leg is not None:
                        notify(leg, response)
                    cost = rt.pricing.cost(
                        provider=slot.name,
                        kind=slot.kind,
                        model=response.model or model,
                        usage=response.usage,
                        local=slot.local,
                    )
                    permit.settle(response.usage)
                    reservation.settle(cost)
            except BaseException as exc:
                if sent_at is None or not_billed(exc):
                    reservation.settle(0.0)
                else:
                    reservation.settle(None)
                raise
    except BaseException as exc:
        attempt_failed(call, slot, model, info, exc, probe, sent_at, leg, stream=False)
        raise
    response.cost_usd = cost
    response.request_id = call.request_id
    if response.rate_limits is not None:
        slot.limiter.observe(response.rate_limits, model=model)
    if breaker is not None:
        breaker.success(probe)
    slot.window(model, False).add(done_at - sent_at)
    info.finished = done_at
    info.usage = response.usage
    info.cost_usd = cost
    info.outcome = "success"
    rt.observer.attempt_finished(info, response, None)
    return response


async def _call_provider(call: Call, slot: ProviderSlot, model: str) -> Response:
    timeout = call.rt.attempt_timeout
    if timeout is not None:
        deadline = loop_time() + timeout
        if deadline < call.deadline:
            with anyio.CancelScope(deadline=deadline):
                return await slot.provider.complete(call.request)
            raise ProviderTimeout(
                f"no answer within {timeout:g}s (attempt timeout)", provider=slot.name, model=model
            )
    return await slot.provider.complete(call.request)


def rate_limit_feedback(slot: ProviderSlot, model: str, exc: BaseException) -> None:
    """Hand a 429's Retry-After and headers to the limiter.

    Called while the attempt still holds its limiter slot: giving the slot back first would
    let the next waiter go out straight into the same 429 before the pause lands.
    """
    if isinstance(exc, RateLimited):
        if exc.retry_after is not None:
            slot.limiter.pause(exc.retry_after, model=model)
        if exc.rate_limits is not None:
            slot.limiter.observe(exc.rate_limits, model=model)


def attempt_failed(
    call: Call,
    slot: ProviderSlot,
    model: str,
    info: AttemptInfo,
    exc: BaseException,
    probe: bool,
    sent_at: float | None,
    leg: Leg | None,
    *,
    stream: bool,
) -> None:
    """Book a failed or cancelled attempt: limiter, breaker, latency, observer."""
    rt = call.rt
    now = rt.clock()
    info.finished = now
    breaker = slot.breaker
    if not isinstance(exc, Exception):  # cancelled: lost a race, or the caller gave up
        if breaker is not None:
            breaker.abandon(probe)
        if leg is not None and leg.lost:
            info.outcome = "lost"
            rt.counters["lost"] += 1
            if sent_at is not None:
                # A lost leg would have taken at least this long: a censored sample. Kept
                # (as such), it stops the adaptive hedge delay from drifting down as
                # hedging hides the slow calls it is meant to learn from.
                slot.window(model, stream).add(now - sent_at, censored=True)
        else:
            info.outcome = "cancelled"
        rt.observer.attempt_finished(info, None, None)
        return
    if breaker is not None and not isinstance(exc, CircuitOpen):
        if trips_breaker(exc):
            breaker.failure(probe)
        else:
            breaker.abandon(probe)
    info.outcome = "error"
    rt.observer.attempt_finished(info, None, exc)
