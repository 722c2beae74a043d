"""``Bracket``: one request as the observers see it, from arrival to end.

The pipeline opens a bracket for every request before it asks the cache, so a cache hit
and an answer from upstream are reported alike, exactly once: ``request_started`` on
arrival, ``request_finished`` with the outcome. Between the two, the request's id is bound
for log calls (:func:`~asyncllm.orchestrator.current_request_id`), and the attempts the
strategy makes carry the same id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._hooks import RequestInfo
from .orchestrator import bind_request_id, unbind_request_id

if TYPE_CHECKING:
    from ._types import Response
    from .orchestrator import Call

__all__ = ["Bracket"]


class Bracket:
    """Started on creation (the id bound, the observers told); :meth:`finish` ends it once.

    Args:
        call: The request (its id, start time and attempt count).
        strategy: The strategy's name, for the observers.
        stream: A stream rather than a complete call.
    """

    __slots__ = ("_binding", "call", "done", "info")

    def __init__(self, call: Call, strategy: str, stream: bool) -> None:
        self.call = call
        self.done = False
        self._binding = bind_request_id(call.request_id)
        self.info = RequestInfo(call.request_id, call.request, strategy, stream, call.started)
        call.rt.observer.request_started(self.info)

    def finish(self, response: Response | None, error: BaseException | None) -> None:
        """Report the outcome (a stream left before its end: both ``None``) and unbind the
        id. Only the first call counts."""
        if self.done:
            return
        self.done = True
        call, info = self.call, self.info
        rt = call.rt
        info.attempts = call.attempts
        info.extra["latency"] = rt.clock() - info.started
        if response is not None:
            if response.cached:
                info.cached = True
                response.request_id = call.request_id
        elif error is None:
            info.extra["outcome"] = "abandoned"
        try:
            rt.observer.request_finished(info, response, error)
        finally:
            unbind_request_id(self._binding)
