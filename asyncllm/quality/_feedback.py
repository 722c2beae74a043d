"""User feedback: scores and labels attached to finished requests by their request id.

The client remembers its most recent finished requests in a :class:`RequestLedger` (an
observer in its chain: who answered, latency, cost), so ``client.feedback(request_id, ...)``
hands the observers a :class:`~asyncllm._hooks.FeedbackInfo` that carries them next to the
score: metrics count it under the provider and model that answered, logs print it with the
request's latency and cost.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from .._exceptions import InvalidRequestError
from .._hooks import FeedbackInfo, NoObserver

if TYPE_CHECKING:
    from .._hooks import RequestInfo
    from .._types import Response

__all__ = ["RequestLedger", "build_feedback"]

#: Finished requests a client remembers for feedback.
LEDGER_SIZE = 10_000
#: Longest label kept (labels are categories, such as "thumbs_down" or "wrong_language").
MAX_LABEL = 100


#: ``(provider, model, latency, cost_usd, cached)`` of a finished request.
_Entry = tuple[str, str, "float | None", "float | None", bool]


class RequestLedger(NoObserver):
    """An observer remembering the last ``size`` successful requests (oldest forgotten)."""

    __slots__ = ("_entries", "size")

    def __init__(self, size: int = LEDGER_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Remember who answered the request, how fast and at what cost."""
        if response is None:
            return
        entries = self._entries
        entries[info.request_id] = (
            response.provider,
            response.model,
            info.extra.get("latency"),
            response.cost_usd,
            response.cached,
        )
        if len(entries) > self.size:
            entries.popitem(last=False)

    def get(self, request_id: str) -> _Entry | None:
        """What is remembered of ``request_id``."""
        return self._entries.get(request_id)


def build_feedback(
    ledger: RequestLedger,
    request_id: object,
    score: object,
    label: object,
    comment: object,
) -> FeedbackInfo:
    """Validate ``client.feedback(...)``'s arguments and fill in what the ledger knows.

    Raises:
        InvalidRequestError: no request id, neither a score nor a label, a score that is
            not a finite number, a label that is not a short non-empty string.
    """
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRequestError(
            f"feedback: request_id must be a non-empty string, got {request_id!r}"
        )
    if score is None and label is None:
        raise InvalidRequestError("feedback: give a score, a label, or both")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        raise InvalidRequestError(f"feedback: score must be a finite number, got {score!r}")
    if label is not None and (not isinstance(label, str) or not label or len(label) > MAX_LABEL):
        raise InvalidRequestError(
            f"feedback: label must be a non-empty string of at most {MAX_LABEL} characters, "
            f"got {label!r}"
        )
    if comment is not None and not isinstance(comment, str):
        raise InvalidRequestError(f"feedback: comment must be a string, got {comment!r}")
    entry = ledger.get(request_id)
    provider, model, latency, cost, cached = entry if entry else (None, None, None, None, None)
    return FeedbackInfo(
        request_id=request_id,
        score=None if score is None else float(score),
        label=label,
        comment=comment,
        provider=provider,
        model=model,
        latency=latency,
        cost_usd=cost,
        cached=cached,
        at=time.time(),
    )
