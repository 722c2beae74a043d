"""Which attempt pipeline answers a ``complete`` call: one place, stated once.

A complete answer normally comes from the provider's non-streaming call
(:func:`~._attempt.complete_attempt`). With ``first_token_timeout`` set, it is built by
consuming a stream instead (:func:`~._stream_attempt.complete_via_stream`): only a stream shows when
the first token arrives, so only a stream can enforce that limit. The caller still gets one
:class:`~asyncllm.Response`, priced, settled and reported exactly as a non-streamed one; the
provider sees a streamed request. ``docs/orchestrator.md`` says so, and
``tests/orchestrator/test_orch_fallback.py`` pins it.

Kept apart from both pipelines so neither imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from ._attempt import complete_attempt
from ._stream_attempt import complete_via_stream

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._hooks import AttemptRole
    from .._types import Response
    from ._admission import LegEvents
    from ._runtime import Call, Leg

__all__ = ["AttemptFn", "attempt_for"]

#: One attempt of a ``complete`` call: ``(call, index, role, number, leg, events)``.
AttemptFn: TypeAlias = (
    "Callable[[Call, int, AttemptRole, int, Leg | None, LegEvents | None], Awaitable[Response]]"
)


def attempt_for(call: Call) -> AttemptFn:
    """How each attempt of ``call`` (a ``complete`` call) runs: the provider's
    non-streaming call, or, with a first-token timeout, a consumed stream. Chosen once per
    call (strategies call what this returns for every attempt, without a dispatch frame).

    ``leg``/``events`` are given by concurrent strategies (see
    :class:`~._admission.LegEvents`).
    """
    if call.first_token_timeout is not None:
        return complete_via_stream
    return complete_attempt
