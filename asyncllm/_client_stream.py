"""``ClientStream``: what ``client.stream(...)`` returns.

It sits beside the client and knows only the client's :class:`~._pipeline.Pipeline`. On
entering it makes the request's :class:`~.orchestrator._runtime.Call` and opens its
:class:`~._bracket.Bracket` (the observers hear of every stream once, whoever answers it),
then opens the stream through the response cache when there is one, else straight through
the strategy (:func:`~.orchestrator._strategy.strategy_stream`), and hands out the iterator
that assembles the response. The bracket is closed when the block is left.

The acceptance predicates judge a replayed answer before its first chunk (a rejected one is
not replayed: the request goes upstream, as ``cache="refresh"``) and a followed one at its
end (a rejection raises :class:`~asyncllm.AnswerRejected` from the ``async for``).

A stream that follows an identical stream in flight keeps its own deadline: waiting for the
shared stream to open and for each next chunk ends at it with
:class:`~asyncllm.DeadlineExceeded` for this caller only (the shared stream goes on for the
others). Its leader's deadline is the shared stream's.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio

from ._bracket import Bracket
from ._exceptions import AnswerRejected
from ._hooks import CacheMode
from .orchestrator import deadline_error, strategy_stream
from .providers import StreamAccumulator
from .quality import judge

if TYPE_CHECKING:
    from ._pipeline import Pipeline
    from ._timeout import Timeout
    from ._typed import Typed
    from ._types import ChatRequest, Chunk, Response
    from .orchestrator import Call, Strategy
    from .quality import Checks

__all__ = ["ClientStream"]


class ClientStream:
    """``async with client.stream(...) as s: async for chunk in s: ...``.

    Attributes:
        response: The assembled :class:`~asyncllm.Response` once the stream was read to
            its end (``None`` before, or when left early).
    """

    __slots__ = (
        "_acc",
        "_accept",
        "_bracket",
        "_cache_mode",
        "_cache_ttl",
        "_call",
        "_cm",
        "_deadline",
        "_error",
        "_it",
        "_pipeline",
        "_rejected",
        "_response",
        "_served",
        "_strategy",
        "_timeout",
        "_typed",
        "_upstream",
        "request",
    )

    def __init__(
        self,
        pipeline: Pipeline,
        request: ChatRequest,
        strategy: Strategy,
        timeout: Timeout,
        cache_mode: CacheMode,
        cache_ttl: float | None,
        accept: Checks | None = None,
        typed: Typed | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._accept = accept
        self._typed = typed
        self._call: Call | None = None
        self._bracket: Bracket | None = None
        # Served by the cache (a replayed answer, or a follower of an identical stream).
        self._served = False
        # A follower's own deadline, applied to its waits (``None``: none to apply).
        self._deadline: float | None = None
        # The strategy's stream, once the cache (or the plain path) opened it.
        self._upstream: Any = None
        self._rejected = False
        self._error: BaseException | None = None
        self.request = request
        self._strategy = strategy
        self._timeout = timeout
        self._cache_mode: CacheMode = cache_mode
        self._cache_ttl = cache_ttl
        self._cm: Any = None
        self._it: AsyncIterator[Chunk] | None = None
        self._acc: StreamAccumulator | None = None
        self._response: Response | None = None

    def _open_upstream(self) -> Any:
        call = self._call
        assert call is not None
        self._upstream = strategy_stream(call, self._strategy)
        return self._upstream

    @property
    def request_id(self) -> str | None:
        """The request's id, once the stream is open."""
        call = self._call
        return None if call is None else call.request_id

    @property
    def response(self) -> Response | None:
        """The assembled response, once the stream was read to its end (``None`` when the
        acceptance predicate rejected it)."""
        if self._rejected:
            return None
        if self._response is None and self._acc is None:
            return getattr(self._it, "response", None)
        return self._response

    @property
    def provider(self) -> str | None:
        """Who answers, once known."""
        response = self.response
        return getattr(self._it, "provider", None) or (response.provider if response else None)

    async def __aenter__(self) -> Self:
        pipeline = self._pipeline
        if not pipeline.opened:
            await pipeline.open()
        call = self._call = pipeline.call(self.request, self._timeout, self._accept, stream=True)
        bracket = self._bracket = Bracket(call, self._strategy.name, True)
        try:
            await self._open()
        except BaseException as exc:
            bracket.finish(None, exc)
            raise
        return self

    async def _open(self) -> None:
        pipeline = self._pipeline
        if pipeline.cache is None:  # the plain path: no extra frame
            self._cm = self._open_upstream()
            self._it = await self._cm.__aenter__()
            return
        it = await self._enter_in_time(self._cache_mode)
        if self._upstream is None:
            # Served by the cache: a replayed answer is judged before its first chunk.
            replayed = getattr(it, "replayed", None)
            checks = self._call.accept if self._call is not None else ()
            if replayed is not None and checks:
                try:
                    reason = await judge(checks, replayed)
                except BaseException as exc:
                    await self._cm.__aexit__(type(exc), exc, exc.__traceback__)
                    raise
                if reason is not None:
                    # A stored answer this request would reject: not replayed, go upstream.
                    await self._cm.__aexit__(None, None, None)
                    it = await self._enter_in_time("refresh")
            self._served = self._upstream is None
            call = self._call
            if self._served and replayed is None and call is not None and call.deadline < math.inf:
                # A follower: the stream it shares runs on its leader's deadline.
                self._deadline = call.deadline
        if not hasattr(it, "response"):
            # An iterator that does not assemble its response: assemble it here.
            self._acc = StreamAccumulator()

    async def _enter_in_time(self, mode: CacheMode) -> AsyncIterator[Chunk]:
        """:meth:`_enter` within the request's deadline: a follower waiting for an identical
        stream to open (its leader may be queued on a limiter) waits no longer than that."""
        call = self._call
        assert call is not None
        if call.deadline == math.inf:
            return await self._enter(mode)
        with anyio.CancelScope(deadline=call.deadline):
            return await self._enter(mode)
        raise deadline_error(call)

    async def _enter(self, mode: CacheMode) -> AsyncIterator[Chunk]:
        pipeline = self._pipeline
        cache = pipeline.cache
        assert cache is not None and self._call is not None
        self._cm = cache.stream(
            self.request,
            pipeline.rt.route(self._call.models),
            self._open_upstream,
            mode=mode,
            ttl=self._cache_ttl,
        )
        it: AsyncIterator[Chunk] = await self._cm.__aenter__()
        self._it = it
        return it

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._cm.__aexit__(exc_type, exc, tb)
        except BaseException as err:
            self._end(err)
            raise
        self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        """Close the bracket: a response read to its end is a success (whatever the
        caller's block did afterwards, and even when it does not fit a pydantic
        ``response_format``: as for ``complete``, that check is the caller's, above the
        request); otherwise the error that ended the stream, else "abandoned"."""
        bracket = self._bracket
        if bracket is None or bracket.done:
            return
        response = self.response  # set only once the stream was read to its end
        if response is not None:
            bracket.finish(response, None)
            return
        error = self._error or getattr(self._upstream, "error", None) or exc
        bracket.finish(None, error)

    def __aiter__(self) -> AsyncIterator[Chunk]:
        # The orchestrated iterator assembles the response itself: hand it out directly,
        # one async frame less per chunk.
        if self._acc is None and not self._served and self._it is not None and self._typed is None:
            return self._it
        return self

    async def __anext__(self) -> Chunk:
        it = self._it
        if it is None:
            raise RuntimeError("iterate the stream inside `async with client.stream(...)`")
        try:
            chunk = await (it.__anext__() if self._deadline is None else self._next_in_time(it))
        except StopAsyncIteration:
            await self._finish()
            typed, self._typed = self._typed, None
            response = self.response
            if typed is not None and response is not None:
                # Raises StructuredOutputError (from the end of the stream) when the
                # answer does not fit the response_format.
                self._response = typed.apply(response)
            raise
        except Exception as exc:
            self._error = exc
            raise
        if self._acc is not None:
            self._acc.add(chunk)
        return chunk

    async def _next_in_time(self, it: AsyncIterator[Chunk]) -> Chunk:
        """A follower's next chunk, or :class:`~asyncllm.DeadlineExceeded` at its deadline."""
        assert self._deadline is not None and self._call is not None
        with anyio.CancelScope(deadline=self._deadline):
            return await it.__anext__()
        if getattr(it, "response", None) is not None:
            raise StopAsyncIteration  # the answer was whole in time: it is this caller's
        raise deadline_error(self._call)

    async def _finish(self) -> None:
        call = self._call
        assert call is not None
        if self._response is None and self._acc is not None:
            route = self._pipeline.rt.route(call.models)
            response = self._acc.response(provider=route[0][0], model=route[0][2])
            response.cached = self._served
            self._response = response
        if not self._served:
            return
        answer = self.response
        if answer is not None:
            answer.request_id = call.request_id
        checks = self._call.accept if self._call is not None else ()
        reason = await judge(checks, answer) if checks and answer is not None else None
        if reason is not None and answer is not None:
            error = AnswerRejected(reason, response=answer, provider=answer.provider)
            self._rejected = True
            self._error = error
            raise error
