"""The strategy of one logical request that goes upstream: deadline, then fallback, race or
hedge.

The pipeline above (``asyncllm/_pipeline.py``) made the :class:`~._runtime.Call` (id,
deadline, models), told the observers, bound the request id and asked the cache; what
reaches this module is a request the cache did not answer. :func:`run_strategy` runs it to
a :class:`~asyncllm.Response`; :func:`strategy_stream` opens it as a stream (an async
context manager giving an async iterator of chunks, which is what the response cache's
``open_stream`` expects).

The plain path (fallback strategy, or any strategy over one provider, no deadline) creates
no task group and no cancel scope: one attempt run in the caller's task.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio

from .._exceptions import DeadlineExceeded
from ._concurrent_stream import ConcurrentStream
from ._engine import Engine
from ._fallback import SequentialStream, complete_fallback
from ._policy import Fallback, Hedge

if TYPE_CHECKING:
    from .._types import Response
    from ._policy import Strategy
    from ._runtime import Call, Runtime

__all__ = ["deadline_error", "run_strategy", "strategy_stream"]


def _sequential(rt: Runtime, strategy: Strategy) -> bool:
    # A race of one is a fallback of one; a hedge of one provider still hedges (to itself).
    return strategy.__class__ is Fallback or (
        len(rt.slots) == 1 and strategy.__class__ is not Hedge
    )


async def run_strategy(call: Call, strategy: Strategy) -> Response:
    """Run ``call`` upstream with ``strategy``, within its deadline.

    Raises:
        DeadlineExceeded: the request's deadline passed.
        AllProvidersFailed: every attempt failed with errors that fail over.
        AsyncLLMError: a bad request, authentication failure, budget refusal... as is.
    """
    call.dispatch()
    sequential = _sequential(call.rt, strategy)
    if call.deadline == math.inf:
        if sequential:  # the plain path: one frame less
            response = call.response = await complete_fallback(call)
        else:
            response = call.response = await _concurrent(call, strategy)
        return response
    with anyio.CancelScope(deadline=call.deadline):
        if sequential:
            response = call.response = await complete_fallback(call)
        else:
            response = call.response = await _concurrent(call, strategy)
        return response
    raise deadline_error(call)


async def _concurrent(call: Call, strategy: Strategy) -> Response:
    response = await Engine(call, strategy).run()  # type: ignore[arg-type]
    assert response is not None
    return response


def deadline_error(call: Call) -> DeadlineExceeded:
    """The error of a request whose deadline passed (naming its last error, if any)."""
    last = f"; last error: {call.errors[-1]}" if call.errors else ""
    return DeadlineExceeded(
        f"request {call.request_id} passed its deadline after {call.attempts} attempt(s){last}"
    )


def strategy_stream(call: Call, strategy: Strategy) -> SequentialStream | ConcurrentStream:
    """``call`` upstream as a stream: ``async with`` gives an async iterator of chunks.

    The iterator has ``response`` (after the last chunk), ``provider`` and ``model``; the
    context manager has ``response`` and ``error`` (what ended the stream, if anything).
    """
    call.dispatch()
    if _sequential(call.rt, strategy):
        return SequentialStream(call)
    return ConcurrentStream(call, strategy)  # type: ignore[arg-type]
