"""``asyncllm.Client``: the public entry point.

A client owns its providers' pooled HTTP connections and runs every call through the
orchestrator (``asyncllm.orchestrator``): a strategy (fallback, race, hedge), retries with
budgets, deadlines, per-provider circuit breakers, and the seams around each attempt
(rate limiters, spend budget, pricing, observers), optionally behind a response cache.

::

    async with Client(["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"],
                      strategy=Hedge(), timeout=30) as client:
        response = await client.complete("Say hi")
        async with client.stream("Tell me a story") as s:
            async for chunk in s:
                print(chunk.text, end="")
        async with client.map(prompts, concurrency=32) as results:
            async for result in results:
                ...
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, Self

import anyio

from ._exceptions import ConfigurationError, InvalidRequestError
from ._hooks import (
    Budget,
    CacheMode,
    Limiter,
    NoBudget,
    NoObserver,
    Observer,
    Pricing,
    ResponseCache,
    Route,
)
from ._types import ChatRequest, Response, build_request
from .orchestrator._client_stream import ClientStream
from .orchestrator._fanout import FanOut
from .orchestrator._policy import (
    BreakerPolicy,
    RetryPolicy,
    Strategy,
    StrategyLike,
    coerce_strategy,
)
from .orchestrator._request import report_cache_hit, run_complete
from .orchestrator._runtime import ProviderSlot, Runtime, breaker_for, loop_time
from .providers import HttpResources, Provider, resolve
from .telemetry._log import CompositeObserver, LoggingObserver
from .telemetry._metrics import MetricsObserver

__all__ = ["Client", "ClientStream"]

_CACHE_MODES = ("use", "bypass", "refresh")
_DEFAULT_BREAKER = BreakerPolicy()


def _default_pricing(budget: Budget | None) -> Pricing:
    # Every response knows its cost: genai-prices' bundled table unless told otherwise,
    # shared with the budget so both price alike.
    shared = getattr(budget, "pricing", None)
    if shared is not None:
        return shared  # type: ignore[no-any-return]
    from .cost import Prices

    return Prices()


def _positive(name: str, value: float | None) -> float | None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return value


class Client:
    """An asyncllm client over one or more providers.

    Args:
        providers: A spec (``"openai:gpt-4o-mini"``), a driver, or a list of them, in
            priority order. Unknown kinds and missing API keys raise here.
        strategy: ``"fallback"`` (default), ``"race"``, ``"hedge"`` or a
            :class:`~asyncllm.orchestrator.Fallback` / ``Race`` / ``Hedge`` object.
        retry: Retry policy (attempt cap, backoff, retry budget).
        timeout: Overall deadline of each logical request, seconds (all attempts).
        attempt_timeout: Limit of one attempt once sent, seconds.
        first_token_timeout: Limit from sending an attempt to its first token, seconds.
        breaker: Circuit breaker policy per provider; ``None`` turns breakers off.
        limits: Rate limiters keyed by provider name.
        budget: Spend budget checked before every attempt.
        pricing: Prices responses (sets ``Response.cost_usd``); by default genai-prices'
            bundled table (:class:`~asyncllm.cost.Prices`), or the budget's prices.
        cache: Response cache in front of the orchestrator.
        observers: Telemetry observers (metrics, traces), called for every request and
            attempt.
        log: Add a :class:`~asyncllm.telemetry.LoggingObserver` (structured events).
        metrics: Keep a :class:`~asyncllm.telemetry.MetricsObserver` (per provider and
            model counters, latency quantiles, tokens, cost) in ``statistics()["metrics"]``.
        max_connections: Size of the shared HTTP connection pool.
        clock: Monotonic seconds for latency windows, breakers and budgets (default: the
            event loop's clock). Deadlines always use the event loop's clock.
    """

    def __init__(
        self,
        providers: str | Provider | Sequence[str | Provider],
        *,
        strategy: StrategyLike = "fallback",
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        attempt_timeout: float | None = None,
        first_token_timeout: float | None = None,
        breaker: BreakerPolicy | None = _DEFAULT_BREAKER,
        limits: Mapping[str, Limiter] | None = None,
        budget: Budget | None = None,
        pricing: Pricing | None = None,
        cache: ResponseCache | None = None,
        observers: Sequence[Observer] = (),
        log: bool = True,
        metrics: bool = True,
        max_connections: int = 512,
        clock: Callable[[], float] | None = None,
    ) -> None:
        specs: Sequence[str | Provider] = (
            [providers]
            if isinstance(providers, str) or not isinstance(providers, Sequence)
            else providers
        )
        if not specs:
            raise ConfigurationError("a Client needs at least one provider")
        self._providers: list[Provider] = [resolve(s) for s in specs]
        names = [p.name for p in self._providers]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"provider names must be unique, got {names}")
        limits = dict(limits or {})
        unknown = set(limits) - set(names)
        if unknown:
            raise ConfigurationError(f"limits name unknown providers {sorted(unknown)}")
        self._strategy: Strategy = coerce_strategy(strategy)
        self._timeout = _positive("timeout", timeout)
        clock = clock if clock is not None else loop_time
        slots = [
            ProviderSlot(
                i, p, limiter=limits.get(p.name), breaker=breaker_for(p.name, breaker, clock)
            )
            for i, p in enumerate(self._providers)
        ]
        chain: list[Observer] = [LoggingObserver()] if log else []
        chain.extend(observers)
        # Metrics are cheap (a few µs a request): on by default, in client.statistics().
        self._metrics: MetricsObserver | None = next(
            (o for o in observers if isinstance(o, MetricsObserver)), None
        )
        if self._metrics is None and metrics:
            self._metrics = MetricsObserver()
            chain.append(self._metrics)
        observer: Observer = (
            NoObserver() if not chain else chain[0] if len(chain) == 1 else CompositeObserver(chain)
        )
        self._rt = Runtime(
            slots,
            observer=observer,
            budget=budget if budget is not None else NoBudget(),
            pricing=pricing if pricing is not None else _default_pricing(budget),
            retry=retry if retry is not None else RetryPolicy(),
            clock=clock,
            attempt_timeout=_positive("attempt_timeout", attempt_timeout),
            first_token_timeout=_positive("first_token_timeout", first_token_timeout),
        )
        self._cache = cache
        self._cache_entered = False
        self._http = HttpResources(max_connections=max_connections)
        self._opened = False
        self._closed = False

    @property
    def providers(self) -> tuple[Provider, ...]:
        """The client's drivers, in priority order."""
        return tuple(self._providers)

    @property
    def strategy(self) -> Strategy:
        """The default strategy."""
        return self._strategy

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._open()
        # A cache that shares in-flight calls owns a task group for them; it lives as long
        # as this ``async with`` block (entered and left in the same task).
        enter = getattr(self._cache, "__aenter__", None)
        if enter is not None and not self._cache_entered:
            await enter()
            self._cache_entered = True
        # Price tables load before the first response. ``Prices.aload`` reads its compact
        # index in place (a worker thread costs more than that) and imports genai-prices,
        # when needed, in a thread; another pricing's blocking ``load`` runs in a thread.
        for part in (self._rt.pricing, getattr(self._rt.budget, "pricing", None)):
            aload = getattr(part, "aload", None)
            load = getattr(part, "load", None)
            if callable(aload):
                await aload()
            elif callable(load):
                await anyio.to_thread.run_sync(load)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _open(self) -> None:
        if self._closed:
            raise RuntimeError("this Client is closed")
        if not self._opened:
            self._opened = True
            for p in self._providers:
                await p.open(self._http)

    async def aclose(self) -> None:
        """Close every driver and the HTTP pools (shielded from cancellation)."""
        self._closed = True
        self._opened = False  # the next call goes through _open(), which refuses
        try:
            if self._cache_entered:
                # Not inside the shield below: the cache's task group must be left with its
                # own cancel scope on top of this task's stack.
                self._cache_entered = False
                await self._cache.__aexit__(None, None, None)  # type: ignore[union-attr]
        finally:
            with anyio.CancelScope(shield=True):
                for p in self._providers:
                    await p.aclose()
                await self._http.aclose()

    # -- calls ----------------------------------------------------------------------------

    def _prepare(
        self, strategy: StrategyLike | None, timeout: float | None, cache: str
    ) -> tuple[Strategy, float | None]:
        if cache not in _CACHE_MODES:
            raise InvalidRequestError(f"cache must be one of {_CACHE_MODES}, got {cache!r}")
        return (
            self._strategy if strategy is None else coerce_strategy(strategy),
            self._timeout if timeout is None else _positive("timeout", timeout),
        )

    def route(self, request: ChatRequest) -> Route:
        """``(provider name, kind, model)`` of each provider, in strategy order."""
        return tuple(
            (p.name, p.kind, request.model or p.default_model or "") for p in self._providers
        )

    async def complete(
        self,
        messages: object,
        *,
        strategy: StrategyLike | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (a deadline we enforce, by design)
        cache: CacheMode = "use",
        cache_ttl: float | None = None,
        **params: Any,
    ) -> Response:
        """Run a chat request to completion through the strategy.

        Args:
            messages: A prompt string, a list of message dicts, or a ``ChatRequest``.
            strategy: Override the client's strategy for this call.
            timeout: Override the client's overall deadline for this call.
            cache: ``"use"``, ``"bypass"`` or ``"refresh"`` (when the client has a cache).
            cache_ttl: Lifetime of this entry in the cache, seconds.
            **params: ``model``, ``max_tokens``, ``temperature``... (see ``ChatRequest``).

        Raises:
            InvalidRequestError: malformed messages or parameters (before any call).
            DeadlineExceeded: the deadline passed.
            AllProvidersFailed: every attempt failed.
            ProviderError: a failure that no other attempt could fix (bad request, auth).
        """
        request = build_request(messages, params)
        strat, deadline = self._prepare(strategy, timeout, cache)
        if not self._opened:
            await self._open()
        rt = self._rt
        if self._cache is None:
            return await run_complete(rt, request, strat, deadline)
        response = await self._cache.complete(
            request,
            self.route(request),
            lambda: run_complete(rt, request, strat, deadline),
            mode=cache,
            ttl=cache_ttl,
        )
        if response.cached:
            report_cache_hit(rt, request, response, stream=False)
        return response

    def stream(
        self,
        messages: object,
        *,
        strategy: StrategyLike | None = None,
        timeout: float | None = None,
        cache: CacheMode = "use",
        cache_ttl: float | None = None,
        **params: Any,
    ) -> ClientStream:
        """Stream a chat request: ``async with client.stream(...) as s: async for c in s``.

        Races and hedges commit on the first token. Errors before any token fall over (and
        raise from ``async with`` when every attempt failed); after it, a broken stream
        raises :class:`~asyncllm.StreamBroken` with the partial text.
        """
        request = build_request(messages, params)
        strat, deadline = self._prepare(strategy, timeout, cache)
        return ClientStream(self, request, strat, deadline, cache, cache_ttl)

    def map(
        self,
        requests: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        ordered: bool = False,
        lookahead: int | None = None,
        strategy: StrategyLike | None = None,
        timeout: float | None = None,
        cache: CacheMode = "use",
        cache_ttl: float | None = None,
        **params: Any,
    ) -> FanOut:
        """Run many requests, ``concurrency`` at a time, each through the strategy.

        Use as ``async with client.map(items) as results: async for r in results: ...``;
        each ``r`` is a :class:`~asyncllm.orchestrator.Result` (``index``, ``request``,
        ``response``, ``error``). The input is read lazily; a failed request does not stop
        the others; leaving the block cancels whatever is still in flight.
        """
        self._prepare(strategy, timeout, cache)

        async def one(item: Any) -> Response:
            return await self.complete(
                item, strategy=strategy, timeout=timeout, cache=cache, cache_ttl=cache_ttl, **params
            )

        return FanOut(one, requests, concurrency=concurrency, ordered=ordered, lookahead=lookahead)

    # -- introspection --------------------------------------------------------------------

    def statistics(self) -> dict[str, Any]:
        """Per provider: breaker, latency quantiles, limiter and driver counters; and the
        client's request/attempt counters, retry and hedge budget levels."""
        rt = self._rt
        out: dict[str, Any] = {
            "providers": {s.name: s.statistics() for s in rt.slots},
            "counters": dict(rt.counters),
            "retry_budget": rt.retry_bucket.statistics(),
            "hedge_budget": {
                f"{ratio:g}/{burst:g}": b.statistics()
                for (ratio, burst), b in rt.hedge_buckets.items()
            },
            "http": self._http.statistics(),
        }
        if self._cache is not None:
            out["cache"] = self._cache.statistics()
        if self._metrics is not None:
            out["metrics"] = self._metrics.statistics()
        budget_stats = getattr(rt.budget, "statistics", None)
        if callable(budget_stats):
            out["budget"] = budget_stats()
        return out
