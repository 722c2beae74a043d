"""The request path below :class:`~asyncllm.Client`: one way down, one way back.

``Client`` validates what the caller passed (messages, parameters, strategy, timeout, cache
mode) and hands the request to its :class:`Pipeline`, which runs, downward only::

    Pipeline.complete / ClientStream            asyncllm/_pipeline.py, _client_stream.py
      Call: id, models (resolved once), deadline      orchestrator/_runtime.py
      Bracket: id bound, observers told once          asyncllm/_bracket.py
      -> cache: a hit answers here; a miss calls the next stage     asyncllm/cache/
      -> strategy: fallback | race | hedge, retries, deadline  orchestrator/_strategy.py
      -> one attempt: Admission (breaker, budget, limiter),
         provider, price, book, release      orchestrator/_attempt.py, _stream_attempt.py

Each stage calls only the one below it. The cache is a stage like the others: it is given
the next stage (the strategy for this request, as a callable it may run once, in its own
task group when the call is shared) and never reaches back up.

The pipeline owns the providers' lifecycle (opened on first use or ``async with``, refused
once closed), so :class:`~asyncllm.ClientStream` needs only the pipeline, never the client.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import anyio

from ._bracket import Bracket
from ._exceptions import AnswerRejected, DeadlineExceeded, StructuredOutputError
from ._types import Message
from .orchestrator import Call, deadline_error, loop_time, run_strategy
from .quality import judge

if TYPE_CHECKING:
    from ._hooks import Cache, CacheMode, Route
    from ._timeout import Timeout
    from ._typed import Typed
    from ._types import ChatRequest, Response
    from .orchestrator import Runtime, Strategy
    from .providers import HttpResources, Provider
    from .quality import Checks

__all__ = ["Pipeline"]


class Pipeline:
    """Cache, then strategy, then attempt, for one client's providers.

    Args:
        rt: The orchestrator's runtime (slots, observers, budget, pricing, policies).
        cache: The response cache in front of the strategy, or ``None``.
        providers: The providers, in priority order (their order is the route).
        http: The pooled HTTP resources the providers bind to when opened.
    """

    __slots__ = ("_opening", "cache", "closed", "http", "opened", "providers", "rt")

    def __init__(
        self,
        rt: Runtime,
        cache: Cache | None,
        providers: Sequence[Provider],
        http: HttpResources,
    ) -> None:
        self.rt = rt
        self.cache = cache
        self.providers = tuple(providers)
        self.http = http
        self.opened = False
        self.closed = False
        self._opening = anyio.Lock()

    async def open(self) -> None:
        """Bind the providers to the HTTP pool and load the price tables, once; requests
        arriving meanwhile wait for it. Raises once the client is closed."""
        if self.closed:
            raise RuntimeError("this Client is closed")
        if self.opened:
            return
        async with self._opening:
            if self.opened or self.closed:
                return await self.open()
            for p in self.providers:
                await p.open(self.http)
            await self._load_prices()
            if self.closed:  # closed while this opening waited: stay closed
                raise RuntimeError("this Client is closed")
            self.opened = True

    async def _load_prices(self) -> None:
        """Price tables load before the first response, whether the client was entered with
        ``async with`` or opened by its first request. ``Prices.aload`` reads its compact
        index in place (a worker thread costs more than that) and builds one, or imports
        genai-prices, in a thread; another pricing's blocking ``load`` runs in a thread."""
        rt = self.rt
        for part in (rt.pricing, getattr(rt.budget, "pricing", None)):
            aload = getattr(part, "aload", None)
            load = getattr(part, "load", None)
            if callable(aload):
                await aload()
            elif callable(load):
                await anyio.to_thread.run_sync(load)

    def route(self, request: ChatRequest) -> Route:
        """``(provider name, kind, model)`` of each provider, in strategy order.

        Raises:
            ConfigurationError: the request names no model and a provider has no default.
        """
        rt = self.rt
        return rt.route(rt.models_for(request))

    def call(
        self, request: ChatRequest, timeout: Timeout, accept: Checks | None, *, stream: bool
    ) -> Call:
        """A new request: its id, its models (resolved here, once) and its deadline."""
        rt = self.rt
        return Call(
            rt, request, rt.models_for(request), stream=stream, timeout=timeout, accept=accept
        )

    async def complete(
        self,
        request: ChatRequest,
        strategy: Strategy,
        timeout: Timeout,  # noqa: ASYNC109 (enforced below, by design)
        mode: CacheMode,
        ttl: float | None,
        accept: Checks | None,
    ) -> Response:
        """One logical ``complete`` request: from the cache, or through the strategy."""
        if not self.opened:
            await self.open()
        call = self.call(request, timeout, accept, stream=False)
        bracket = Bracket(call, strategy.name, False)
        try:
            if self.cache is None:
                response = await run_strategy(call, strategy)
            elif call.deadline == math.inf:
                response = await self._cached(call, strategy, mode, ttl)
            else:
                # The deadline covers the wait in the cache too (a lookup, or an identical
                # call in flight); the strategy applies it again where it runs.
                with anyio.CancelScope(deadline=call.deadline) as scope:
                    response = await self._cached(call, strategy, mode, ttl)
                if scope.cancelled_caught:
                    if call.response is None:
                        raise deadline_error(call)
                    # This call's own upstream answer came in time and was paid for; only
                    # what followed (a slow cache write) ran past the deadline: keep it.
                    response = call.response
        except BaseException as exc:
            bracket.finish(None, exc)
            raise
        bracket.finish(response, None)
        return response

    async def _cached(
        self, call: Call, strategy: Strategy, mode: CacheMode, ttl: float | None
    ) -> Response:
        cache = self.cache
        assert cache is not None
        route = self.rt.route(call.models)
        upstream = partial(run_strategy, call, strategy)
        while True:
            try:
                response = await cache.complete(call.request, route, upstream, mode=mode, ttl=ttl)
            except DeadlineExceeded:
                if call.max_attempts or loop_time() >= call.deadline:
                    raise  # this call's own deadline
                # The identical call this one joined ran out of *its* caller's time, not
                # this one's: ask again (join another, or lead one).
                continue
            if not response.cached:
                return response
            checks = call.accept
            reason = await judge(checks, response) if checks else None
            if reason is None:
                return response
            if mode == "refresh":  # joined a refresh in flight whose answer we reject
                raise AnswerRejected(reason, response=response, provider=response.provider)
            mode = "refresh"  # a cached answer this call rejects: ask upstream

    async def complete_typed(
        self,
        request: ChatRequest,
        strategy: Strategy,
        timeout: Timeout,  # noqa: ASYNC109 (enforced by complete, by design)
        mode: CacheMode,
        ttl: float | None,
        accept: Checks | None,
        typed: Typed,
        output_retries: int,
    ) -> Response:
        """:meth:`complete` with a typed answer (``response_format=`` a pydantic model,
        typed tools): validated, and asked again up to ``output_retries`` times, each time
        showing the model its answer and the validation errors (each try is a request of
        its own, reported and paid for like any other).

        Raises:
            StructuredOutputError: the last answer does not fit; it carries the raw text.
        """
        attempt = 1
        while True:
            response = await self.complete(request, strategy, timeout, mode, ttl, accept)
            try:
                return typed.apply(response, attempts=attempt)
            except StructuredOutputError as exc:
                # A stored answer that does not validate would fail every later identical
                # call: drop it from the cache (the answer itself travels in the error).
                invalidate = getattr(self.cache, "invalidate", None)
                if invalidate is not None and mode != "bypass":
                    await invalidate(request, self.route(request))
                if attempt > output_retries:
                    raise
                from .tools import retry_prompt

                # Show the model what it wrote and why it was rejected.
                request = dataclasses.replace(
                    request,
                    messages=(
                        *request.messages,
                        response.to_message(),
                        Message(role="user", content=retry_prompt(exc)),
                    ),
                )
                attempt += 1
