"""One logical request from start to finish: id, deadline, strategy, observer events.

:func:`run_complete` is the whole orchestrator for ``client.complete``; :class:`StreamRun`
is the same for ``client.stream`` (an async context manager giving an async iterator of
chunks, which is what the response cache's ``open_stream`` expects).

The plain path (fallback strategy, or any strategy over one provider, no deadline) creates
no task group and no cancel scope: one :class:`~._runtime.Call` and one pipeline run.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import DeadlineExceeded
from .._hooks import RequestInfo
from ._concurrent import Engine
from ._context import bind_request_id, new_request_id, unbind_request_id
from ._fallback import SequentialStream, complete_fallback
from ._policy import Fallback, Hedge
from ._runtime import Call
from ._stream_race import ConcurrentStream

if TYPE_CHECKING:
    from .._timeout import Timeout
    from .._types import ChatRequest, Response
    from ..quality._accept import Checks
    from ._context import Binding
    from ._policy import Strategy
    from ._runtime import Runtime

__all__ = ["CacheHit", "StreamRun", "report_cache_hit", "run_complete"]


def _sequential(rt: Runtime, strategy: Strategy) -> bool:
    # A race of one is a fallback of one; a hedge of one provider still hedges (to itself).
    return strategy.__class__ is Fallback or (
        len(rt.slots) == 1 and strategy.__class__ is not Hedge
    )


async def run_complete(
    rt: Runtime,
    request: ChatRequest,
    strategy: Strategy,
    timeout: Timeout,  # noqa: ASYNC109 (a limit we enforce with a cancel scope, by design)
    accept: Checks | None = None,
) -> Response:
    """Run one logical request to a :class:`~asyncllm.Response`.

    ``accept`` overrides the client's acceptance predicates for this request.

    Raises:
        DeadlineExceeded: the overall deadline passed.
        AllProvidersFailed: every attempt failed with errors that fail over.
        AsyncLLMError: a bad request, authentication failure, budget refusal... as is.
    """
    call = Call(rt, request, stream=False, timeout=timeout, accept=accept)
    binding = bind_request_id(call.request_id)
    observer = rt.observer
    info = RequestInfo(call.request_id, request, strategy.name, False, call.started)
    observer.request_started(info)
    try:
        if call.deadline == math.inf:
            response = await _strategy(rt, call, strategy)
        else:
            with anyio.CancelScope(deadline=call.deadline) as scope:
                response = await _strategy(rt, call, strategy)
            if scope.cancelled_caught:
                raise _deadline(call)
    except BaseException as exc:
        _close_info(rt, info, call)
        observer.request_finished(info, None, exc)
        raise
    else:
        _close_info(rt, info, call)
        observer.request_finished(info, response, None)
        return response
    finally:
        unbind_request_id(binding)


async def _strategy(rt: Runtime, call: Call, strategy: Strategy) -> Response:
    if _sequential(rt, strategy):
        return await complete_fallback(call)
    response = await Engine(call, strategy).run()  # type: ignore[arg-type]
    assert response is not None
    return response


def _close_info(rt: Runtime, info: RequestInfo, call: Call) -> None:
    info.attempts = call.attempts
    # The logical request's own latency (a hedged answer's Response.latency is its leg's).
    info.extra["latency"] = rt.clock() - info.started


def _deadline(call: Call) -> DeadlineExceeded:
    last = f"; last error: {call.errors[-1]}" if call.errors else ""
    return DeadlineExceeded(
        f"request {call.request_id} passed its deadline after {call.attempts} attempt(s){last}"
    )


class StreamRun:
    """One orchestrated stream: ``async with`` gives an async iterator of chunks.

    The iterator has ``response`` (after the last chunk), ``provider`` and ``model``.
    The request id is bound in the task that enters it (the caller's, or the cache's pump).
    """

    __slots__ = (
        "_binding",
        "_info",
        "_inner",
        "accept",
        "call",
        "request",
        "rt",
        "strategy",
        "timeout",
    )

    def __init__(
        self,
        rt: Runtime,
        request: ChatRequest,
        strategy: Strategy,
        timeout: Timeout,
        accept: Checks | None = None,
    ) -> None:
        self.rt = rt
        self.accept = accept
        self.request = request
        self.strategy = strategy
        self.timeout = timeout
        self.call: Call | None = None
        self._inner: SequentialStream | ConcurrentStream | None = None
        self._binding: Binding | None = None
        self._info: RequestInfo | None = None

    async def __aenter__(self) -> Any:
        rt = self.rt
        call = self.call = Call(
            rt, self.request, stream=True, timeout=self.timeout, accept=self.accept
        )
        self._binding = bind_request_id(call.request_id)
        info = self._info = RequestInfo(
            call.request_id, self.request, self.strategy.name, True, call.started
        )
        rt.observer.request_started(info)
        if _sequential(rt, self.strategy):
            inner: SequentialStream | ConcurrentStream = SequentialStream(call)
        else:
            inner = ConcurrentStream(call, self.strategy)  # type: ignore[arg-type]
        self._inner = inner
        try:
            return await inner.__aenter__()
        except BaseException as exc:
            self._finish(None, exc)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        inner = self._inner
        assert inner is not None
        try:
            await inner.__aexit__(exc_type, exc, tb)
        except BaseException as err:
            self._finish(None, err)
            raise
        self._finish(inner.response, exc)

    def _finish(self, response: Response | None, exc: BaseException | None) -> None:
        info, call = self._info, self.call
        if info is not None and call is not None:
            _close_info(self.rt, info, call)
            if response is None and exc is None:
                info.extra["outcome"] = "abandoned"
            self.rt.observer.request_finished(info, response, exc)
        if self._binding is not None:
            unbind_request_id(self._binding)
            self._binding = None


class CacheHit:
    """A request the cache answered (no attempt was made), told to the observers once.

    The cache sits in front of the orchestrator, so without this, metrics, logs and traces
    would never hear of hits. Created when the hit is known (a complete answer, or a
    stream that replays or follows another's); :meth:`finish` ends it, and only its first
    call counts, so every request reaches the observers exactly once.
    """

    __slots__ = ("done", "info", "rt")

    def __init__(self, rt: Runtime, request: ChatRequest, stream: bool) -> None:
        self.rt = rt
        self.done = False
        self.info = RequestInfo(new_request_id(), request, "cache", stream, rt.clock())
        rt.observer.request_started(self.info)

    @property
    def request_id(self) -> str:
        """The id given to this request."""
        return self.info.request_id

    def finish(self, response: Response | None, error: BaseException | None) -> None:
        """Report the outcome (a stream left before its end: both ``None``)."""
        if self.done:
            return
        self.done = True
        info = self.info
        info.extra["latency"] = self.rt.clock() - info.started
        if response is not None:
            response.request_id = info.request_id
        elif error is None:
            info.extra["outcome"] = "abandoned"
        self.rt.observer.request_finished(info, response, error)


def report_cache_hit(rt: Runtime, request: ChatRequest, response: Response, stream: bool) -> None:
    """Tell the observers about a complete answer the cache gave (see :class:`CacheHit`)."""
    CacheHit(rt, request, stream).finish(response, None)
