"""The request path below :class:`~asyncllm.Client`: one way down, one way back.

``Client`` validates what the caller passed (messages, parameters, strategy, timeout, cache
mode) and hands the request to its :class:`Pipeline`, which runs, downward only::

    Pipeline.complete / ClientStream        asyncllm/_pipeline.py, asyncllm/_client_stream.py
      -> cache (hit: answered here, reported to the observers once)       asyncllm/cache/
      -> run_complete / StreamRun: request id + observer bracket,
         deadline, strategy (fallback | race | hedge)                asyncllm/orchestrator/
      -> one attempt: breaker, budget, limiter, provider, settle        orchestrator/_attempt
                                                                        orchestrator/_stream

The pipeline owns the providers' lifecycle (opened on first use or ``async with``, refused
once closed), so :class:`~asyncllm.ClientStream` needs only the pipeline, never the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._exceptions import AnswerRejected
from .orchestrator._request import report_cache_hit, run_complete
from .quality._accept import judge

if TYPE_CHECKING:
    from ._hooks import Cache, CacheMode, Route
    from ._timeout import Timeout
    from ._types import ChatRequest, Response
    from .orchestrator._policy import Strategy
    from .orchestrator._runtime import Runtime
    from .providers import HttpResources, Provider
    from .quality._accept import Checks

__all__ = ["Pipeline"]


class Pipeline:
    """Cache, then strategy, then attempt, for one client's providers.

    Args:
        rt: The orchestrator's runtime (slots, observers, budget, pricing, policies).
        cache: The response cache in front of the strategy, or ``None``.
        providers: The providers, in priority order (their order is the route).
        http: The pooled HTTP resources the providers bind to when opened.
    """

    __slots__ = ("cache", "closed", "http", "opened", "providers", "rt")

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

    async def open(self) -> None:
        """Bind the providers to the HTTP pool (once). Raises once the client is closed."""
        if self.closed:
            raise RuntimeError("this Client is closed")
        if not self.opened:
            self.opened = True
            for p in self.providers:
                await p.open(self.http)

    def route(self, request: ChatRequest) -> Route:
        """``(provider name, kind, model)`` of each provider, in strategy order."""
        return tuple(
            (p.name, p.kind, request.model or p.default_model or "") for p in self.providers
        )

    def checks(self, accept: Checks | None) -> Checks:
        """The acceptance predicates of a call: its own, else the client's."""
        return accept if accept is not None else (self.rt.accept or ())

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
        rt = self.rt
        if self.cache is None:
            return await run_complete(rt, request, strategy, timeout, accept)
        while True:
            response = await self.cache.complete(
                request,
                self.route(request),
                lambda: run_complete(rt, request, strategy, timeout, accept),
                mode=mode,
                ttl=ttl,
            )
            if not response.cached:
                return response
            checks = self.checks(accept)
            reason = await judge(checks, response) if checks else None
            if reason is None:
                report_cache_hit(rt, request, response, stream=False)
                return response
            if mode == "refresh":  # joined a refresh in flight whose answer we reject
                raise AnswerRejected(reason, response=response, provider=response.provider)
            mode = "refresh"  # a cached answer this call rejects: ask upstream
