"""The per-attempt pipeline for complete (non-streamed) answers, and what both share.

Every attempt, whatever its role (primary, retry, hedge, fallback, race), goes through::

    Admission.enter (breaker -> budget.reserve -> limiter.acquire) -> provider.complete
        -> pricing.cost -> Admission.book(usage, cost) -> Admission.release

with the observer told at the start and the end. The admission (``_admission.py``) is the
one seam streamed attempts (``_stream_attempt.py``) use too: released in this task, in reverse,
shielded, on every path including cancellation; on failure it settles "nothing used" when
the provider surely generated nothing (an error status at open) and "unknown" otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .._exceptions import (
    AnswerRejected,
    CircuitOpen,
    DeadlineExceeded,
    ProviderTimeout,
    RateLimited,
    scrub_exception,
)
from .._hooks import AttemptInfo, AttemptRole
from .._types import Response, Usage, output_cap
from ..quality import assess, judge
from ._admission import ZERO_USAGE, Admission, LegEvents
from ._retry import not_billed, trips_breaker

if TYPE_CHECKING:
    from ._runtime import Call, Leg, ProviderSlot

from ._runtime import loop_time

__all__ = [
    "ZERO_USAGE",
    "attempt_failed",
    "attempt_info",
    "complete_attempt",
    "price",
    "timeout_error",
    "vet",
]


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


def price(call: Call, slot: ProviderSlot, model: str, response: Response) -> float | None:
    """The response's cost; its worst case when the provider reported no usage.

    Unknown usage is never zero: the request is priced as its estimated input plus
    :func:`~asyncllm.output_cap` output tokens (what the budget reserved), and the response
    is marked ``usage_estimated``. The limiter, given ``usage=None``, keeps its reservation.
    """
    usage = response.usage
    if usage is None:
        request = call.request_for(slot)
        usage = Usage(request.estimated_input_tokens(), output_cap(request))
        response.usage_estimated = True
    return call.rt.pricing.cost(
        provider=slot.name,
        kind=slot.kind,
        model=response.model or model,
        usage=usage,
        local=slot.local,
    )


def timeout_error(call: Call, slot: ProviderSlot, model: str, what: str) -> Exception:
    """The error for an attempt cut short by a deadline: the call's, or the attempt's own."""
    if loop_time() >= call.deadline:
        return DeadlineExceeded(
            f"request {call.request_id} passed its deadline after {call.attempts} attempt(s)"
        )
    return ProviderTimeout(what, provider=slot.name, model=model)


async def complete_attempt(
    call: Call,
    index: int,
    role: AttemptRole,
    number: int,
    leg: Leg | None = None,
    events: LegEvents | None = None,
) -> Response:
    """Run one non-streamed attempt on slot ``index`` and return its response.

    ``leg``/``events`` are given by concurrent strategies (see :class:`LegEvents`): the hedge
    timer starts at admission, not while the attempt queues in the limiter. Strategies call
    :func:`~._complete.attempt_for`, which picks this or a consumed stream.
    """
    rt = call.rt
    slot = rt.slots[index]
    model = call.models[index]
    info = attempt_info(call, index, role, number)
    admission = Admission(call, slot, model)
    try:
        try:
            sent_at = await admission.enter(leg, events)
            try:
                response = await _call_provider(call, slot, model)
            except BaseException as exc:
                rate_limit_feedback(slot, model, exc)  # before the slot is given back
                raise
            done_at = rt.clock()
            cost = price(call, slot, model, response)
            # Booked before the answer is judged: a rejected answer was paid for.
            admission.book(response.usage, cost)
            response.cost_usd = cost
            response.request_id = call.request_id
            info.usage = response.usage
            info.cost_usd = cost
            if call.accept:
                # Judged before it can win a race or hedge, while it holds its slot.
                await vet(call, slot, model, response, info, done_at - sent_at)
            else:
                info.quality = assess(call.request, response)
            if events is not None and leg is not None:
                events.answered(leg, response)
        except BaseException as exc:
            await admission.release(billed_unknown=not not_billed(exc))
            raise
        await admission.release(billed_unknown=False)
    except BaseException as exc:
        attempt_failed(
            call, slot, model, info, exc, admission.probe, admission.sent_at, leg, stream=False
        )
        raise
    if response.rate_limits is not None:
        slot.limiter.observe(response.rate_limits, model=model)
    if slot.breaker is not None:
        slot.breaker.success(admission.probe)
    slot.window(model, False).add(done_at - sent_at)
    info.finished = done_at
    info.outcome = "success"
    rt.observer.attempt_finished(info, response, None)
    return response


async def vet(
    call: Call,
    slot: ProviderSlot,
    model: str,
    response: Response,
    info: AttemptInfo,
    latency: float | None,
) -> None:
    """Assess an answer's quality (for the observers) and run the acceptance predicates.

    ``latency`` is the complete answer's (recorded for a rejected answer too: the provider
    did answer); ``None`` for streams, whose time to first token is already recorded.

    Raises:
        AnswerRejected: a predicate rejected the answer (its rate-limit headers are read
            before raising).
    """
    checks = call.accept
    reason = await judge(checks, response) if checks else None
    info.quality = assess(call.request, response, reason)
    if reason is None:
        return
    if response.rate_limits is not None:
        slot.limiter.observe(response.rate_limits, model=model)
    if latency is not None:
        slot.window(model, False).add(latency)
    raise AnswerRejected(reason, response=response, provider=slot.name, model=model)


async def _call_provider(call: Call, slot: ProviderSlot, model: str) -> Response:
    timeout = call.attempt_timeout
    if timeout is not None:
        deadline = loop_time() + timeout
        if deadline < call.deadline:
            with anyio.CancelScope(deadline=deadline):
                return await slot.provider.complete(call.request_for(slot))
            raise ProviderTimeout(
                f"no answer within {timeout:g}s (attempt timeout)", provider=slot.name, model=model
            )
    return await slot.provider.complete(call.request_for(slot))


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
    """Book a failed or cancelled attempt: limiter, breaker, latency, observer.

    The error is scrubbed of registered secrets first (its chain, notes and, for groups,
    sub-errors), before any observer logs it or the caller sees it.
    """
    if isinstance(exc, Exception):
        scrub_exception(exc)
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
    if breaker is not None and isinstance(exc, AnswerRejected):
        breaker.rejection(probe)
    elif breaker is not None and not isinstance(exc, CircuitOpen):
        if trips_breaker(exc):
            breaker.failure(probe)
        else:
            breaker.abandon(probe)
    info.outcome = "error"
    rt.observer.attempt_finished(info, None, exc)
