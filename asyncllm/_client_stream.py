"""``ClientStream``: what ``client.stream(...)`` returns.

It sits beside the client and knows only the client's :class:`~._pipeline.Pipeline`: it
opens the orchestrated stream (:class:`~.orchestrator._request.StreamRun`), through the
response cache when there is one, and hands out the iterator that assembles the response.

A stream the cache serves (a replayed hit, or a follower of an identical stream in flight)
makes no attempt, so no ``StreamRun`` reports it: it is reported here, as a
:class:`~.orchestrator._request.CacheHit`, started on entering and finished at its end (or
on leaving).
The acceptance predicates judge a replayed answer before its first chunk (a rejected one is
not replayed: the request goes upstream, as ``cache="refresh"``) and a followed one at its
end (a rejection raises :class:`~asyncllm.AnswerRejected` from the ``async for``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ._exceptions import AnswerRejected
from ._hooks import CacheMode
from .orchestrator._request import CacheHit, StreamRun
from .providers import StreamAccumulator
from .quality._accept import judge

if TYPE_CHECKING:
    from ._pipeline import Pipeline
    from ._timeout import Timeout
    from ._typed import Typed
    from ._types import ChatRequest, Chunk, Response
    from .orchestrator._policy import Strategy
    from .quality._accept import Checks

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
        "_cache_mode",
        "_cache_ttl",
        "_cm",
        "_hit",
        "_it",
        "_pipeline",
        "_rejected",
        "_response",
        "_run",
        "_strategy",
        "_timeout",
        "_typed",
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
        self._hit: CacheHit | None = None
        self._rejected = False
        self.request = request
        self._strategy = strategy
        self._timeout = timeout
        self._cache_mode: CacheMode = cache_mode
        self._cache_ttl = cache_ttl
        self._cm: Any = None
        self._it: AsyncIterator[Chunk] | None = None
        self._run: StreamRun | None = None
        self._acc: StreamAccumulator | None = None
        self._response: Response | None = None

    def _open_run(self) -> StreamRun:
        self._run = StreamRun(
            self._pipeline.rt, self.request, self._strategy, self._timeout, self._accept
        )
        return self._run

    @property
    def request_id(self) -> str | None:
        """The logical request's id, once the stream is open (a cache hit has its own)."""
        if self._hit is not None:
            return self._hit.request_id
        run = self._run
        return None if run is None or run.call is None else run.call.request_id

    def _checks(self) -> Checks:
        return self._pipeline.checks(self._accept)

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
        if pipeline.cache is None:  # the plain path: no extra frame
            self._cm = self._open_run()
            it = self._it = await self._cm.__aenter__()
        else:
            it = await self._enter(self._cache_mode)
        if self._run is None and pipeline.cache is not None:
            # Served by the cache: no StreamRun will report it.
            replayed = getattr(it, "replayed", None)
            checks = self._checks()
            if replayed is not None and checks:
                try:
                    reason = await judge(checks, replayed)
                except BaseException as exc:
                    await self._cm.__aexit__(type(exc), exc, exc.__traceback__)
                    raise
                if reason is not None:
                    # A stored answer this request would reject: not replayed, go upstream.
                    await self._cm.__aexit__(None, None, None)
                    it = await self._enter("refresh")
            if self._run is None:
                self._hit = CacheHit(pipeline.rt, self.request, stream=True)
        if not hasattr(it, "response"):
            # An iterator that does not assemble its response: assemble it here.
            self._acc = StreamAccumulator()
        return self

    async def _enter(self, mode: CacheMode) -> AsyncIterator[Chunk]:
        pipeline = self._pipeline
        cache = pipeline.cache
        if cache is None:
            self._cm = self._open_run()
        else:
            self._cm = cache.stream(
                self.request,
                pipeline.route(self.request),
                self._open_run,
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
        finally:
            if self._hit is not None:
                self._hit.finish(None, exc)  # a no-op when the end was reported

    def __aiter__(self) -> AsyncIterator[Chunk]:
        # The orchestrated iterator assembles the response and reports to the observers
        # itself: hand it out directly, one async frame less per chunk.
        if self._acc is None and self._hit is None and self._it is not None and self._typed is None:
            return self._it
        return self

    async def __anext__(self) -> Chunk:
        it = self._it
        if it is None:
            raise RuntimeError("iterate the stream inside `async with client.stream(...)`")
        try:
            chunk = await it.__anext__()
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
            if self._hit is not None:
                self._hit.finish(None, exc)
            raise
        if self._acc is not None:
            self._acc.add(chunk)
        return chunk

    async def _finish(self) -> None:
        if self._response is None and self._acc is not None:
            route = self._pipeline.route(self.request)
            response = self._acc.response(provider=route[0][0], model=route[0][2])
            response.cached = self._run is None
            self._response = response
        hit = self._hit
        if hit is None or hit.done:
            return
        answer = self.response
        checks = self._checks()
        reason = await judge(checks, answer) if checks and answer is not None else None
        if reason is not None and answer is not None:
            error = AnswerRejected(reason, response=answer, provider=answer.provider)
            self._rejected = True
            hit.finish(None, error)
            raise error
        hit.finish(answer, None)
