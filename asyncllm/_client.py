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

from ._build import build_request
from ._client_setup import (
    client_timeout,
    coerce_cache,
    default_pricing,
    observer_chain,
    resolve_provider,
)
from ._client_stream import ClientStream
from ._exceptions import (
    ConfigurationError,
    InvalidRequestError,
)
from ._hooks import (
    Budget,
    Cache,
    CacheMode,
    FeedbackInfo,
    Limiter,
    NoBudget,
    Observer,
    Pricing,
    Route,
)
from ._pipeline import Pipeline
from ._timeout import Timeout
from ._typed import split_typed
from ._types import ChatRequest, Response
from .orchestrator import (
    BreakerPolicy,
    FanOut,
    ProviderSlot,
    RetryPolicy,
    Runtime,
    Strategy,
    StrategyLike,
    breaker_for,
    coerce_strategy,
    loop_time,
)
from .providers import HttpResources, Provider
from .quality import Accept, build_feedback, coerce_accept

__all__ = ["Client", "ClientStream"]

_CACHE_MODES = ("use", "bypass", "refresh")
_DEFAULT_BREAKER = BreakerPolicy()


class Client:
    """An asyncllm client over one or more providers.

    Args:
        providers: A spec (``"openai:gpt-4o-mini"``), a driver, or a list of them, in
            priority order. Unknown kinds and missing API keys raise here.
        strategy: ``"fallback"`` (default), ``"race"``, ``"hedge"`` or a
            :class:`~asyncllm.orchestrator.Fallback` / ``Race`` / ``Hedge`` object.
        retry: Retry policy (attempt cap, backoff, retry allowance).
        timeout: The time limits of each request: a :class:`~asyncllm.Timeout` (total,
            attempt, first token, connect, read), or a number of seconds for the total
            (every attempt of the logical request).
        attempt_timeout: Shorthand for ``Timeout(attempt=...)``: one attempt once sent.
        first_token_timeout: Shorthand for ``Timeout(first_token=...)``: from sending an
            attempt to its first token.
        breaker: Circuit breaker policy per provider; ``None`` turns breakers off.
        limits: Rate limiters keyed by provider name.
        budget: Spend budget checked before every attempt.
        pricing: Prices responses (sets ``Response.cost_usd``); by default genai-prices'
            bundled table (:class:`~asyncllm.cost.Prices`), or the budget's prices.
        cache: Response cache in front of the orchestrator (a
            :class:`~asyncllm.ResponseCache` or any :class:`~asyncllm.abc.Cache`); ``True``
            for an in-memory ``ResponseCache()`` with its defaults.
        observers: Telemetry observers (metrics, traces), called for every request and
            attempt.
        log: Add a :class:`~asyncllm.telemetry.LoggingObserver` (structured events).
        metrics: Keep a :class:`~asyncllm.telemetry.MetricsObserver` (per provider and
            model counters, latency quantiles, tokens, cost) in ``statistics()["metrics"]``.
        max_connections: Size of the shared HTTP connection pool.
        clock: Monotonic seconds for latency windows, breakers and budgets (default: the
            event loop's clock). Deadlines always use the event loop's clock.
        accept: Acceptance predicate(s) every answer must pass (see ``docs/quality.md``
            and :mod:`asyncllm.quality`): a function of the :class:`~asyncllm.Response`,
            plain or async, returning ``None``/``True`` to accept or a reason (or
            ``False``) to reject; or a list of them. A rejected answer fails its attempt
            with :class:`~asyncllm.AnswerRejected` and the strategy moves on; its cost is
            booked; it is never cached. A call's own ``accept=`` replaces this one.
    """

    def __init__(
        self,
        providers: str | Provider | Sequence[str | Provider],
        *,
        strategy: StrategyLike = "fallback",
        retry: RetryPolicy | None = None,
        timeout: float | Timeout | None = None,
        attempt_timeout: float | None = None,
        first_token_timeout: float | None = None,
        breaker: BreakerPolicy | None = _DEFAULT_BREAKER,
        limits: Mapping[str, Limiter] | None = None,
        budget: Budget | None = None,
        pricing: Pricing | None = None,
        cache: Cache | bool | None = None,
        observers: Sequence[Observer] = (),
        log: bool = True,
        metrics: bool = True,
        max_connections: int = 512,
        clock: Callable[[], float] | None = None,
        accept: Accept | None = None,
    ) -> None:
        specs: Sequence[str | Provider] = (
            [providers]
            if isinstance(providers, str) or not isinstance(providers, Sequence)
            else providers
        )
        if not specs:
            raise ConfigurationError("a Client needs at least one provider")
        self._timeout = client_timeout(timeout, attempt_timeout, first_token_timeout)
        self._providers: list[Provider] = [resolve_provider(s, self._timeout) for s in specs]
        names = [p.name for p in self._providers]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"provider names must be unique, got {names}")
        limits = dict(limits or {})
        unknown = set(limits) - set(names)
        if unknown:
            raise ConfigurationError(f"limits name unknown providers {sorted(unknown)}")
        self._strategy: Strategy = coerce_strategy(strategy)
        clock = clock if clock is not None else loop_time
        slots = [
            ProviderSlot(
                i, p, limiter=limits.get(p.name), breaker=breaker_for(p.name, breaker, clock)
            )
            for i, p in enumerate(self._providers)
        ]
        observer, self._metrics, self._ledger = observer_chain(observers, log=log, metrics=metrics)
        if pricing is None:
            pricing = default_pricing(budget)
        bind = getattr(budget, "bind", None)
        if callable(bind):
            # The budget prices worst cases with the client's prices, and a budgeted
            # provider whose default model has no price is refused here, not billed silently.
            bind(pricing, [(p.name, p.kind, p.default_model, p.local) for p in self._providers])
        self._rt = Runtime(
            slots,
            observer=observer,
            budget=budget if budget is not None else NoBudget(),
            pricing=pricing,
            retry=retry if retry is not None else RetryPolicy(),
            clock=clock,
            accept=coerce_accept(accept),
        )
        cache = coerce_cache(cache)
        self._cache = cache
        self._cache_entered = False
        self._http = HttpResources(max_connections=max_connections)
        # Everything below the client: cache, strategy, attempt (and the providers' lifecycle).
        self._pipeline = Pipeline(self._rt, cache, self._providers, self._http)

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
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _open(self) -> None:
        await self._pipeline.open()

    async def aclose(self) -> None:
        """Close every driver and the HTTP pools (shielded from cancellation)."""
        self._pipeline.closed = True
        self._pipeline.opened = False  # the next call goes through open(), which refuses
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
        self, strategy: StrategyLike | None, timeout: float | Timeout | None, cache: str
    ) -> tuple[Strategy, Timeout]:
        if cache not in _CACHE_MODES:
            raise InvalidRequestError(f"cache must be one of {_CACHE_MODES}, got {cache!r}")
        limits = self._timeout
        if timeout is not None:
            own = Timeout.coerce(timeout)
            if own.connect is not None or own.read is not None:
                raise ConfigurationError(
                    "Timeout.connect and Timeout.read belong to the client's connections: "
                    "set them on Client(timeout=...), not per call"
                )
            limits = own.over(limits)
        return (self._strategy if strategy is None else coerce_strategy(strategy), limits)

    def route(self, request: ChatRequest) -> Route:
        """``(provider name, kind, model)`` of each provider, in strategy order."""
        return self._pipeline.route(request)

    async def complete(
        self,
        messages: object,
        *,
        strategy: StrategyLike | None = None,
        timeout: float | Timeout | None = None,  # noqa: ASYNC109 (limits we enforce, by design)
        cache: CacheMode = "use",
        cache_ttl: float | None = None,
        accept: Accept | None = None,
        output_retries: int = 0,
        **params: Any,
    ) -> Response:
        """Run a chat request to completion through the strategy.

        Args:
            messages: A prompt string, a list of message dicts, or a ``ChatRequest``.
            strategy: Override the client's strategy for this call.
            timeout: This call's limits: a number (the total, seconds) or a
                :class:`~asyncllm.Timeout` whose fields override the client's.
            cache: ``"use"``, ``"bypass"`` or ``"refresh"`` (when the client has a cache).
            cache_ttl: Lifetime of this entry in the cache, seconds.
            accept: Acceptance predicate(s) for this call, instead of the client's
                (``[]``: none). A cached answer they reject is not served: the request
                goes upstream as with ``cache="refresh"``.
            output_retries: With ``response_format=`` a pydantic model: how many more
                times to ask when the answer does not validate, each time showing the
                model its answer and the validation errors (default 0: raise at once).
            **params: ``model``, ``max_tokens``, ``temperature``... (see ``ChatRequest``).
                ``response_format`` may be a pydantic model (``response.parsed`` is then
                the validated instance); ``tools`` may hold :class:`asyncllm.tools.Tool`
                objects or plain functions (``response.tool_calls`` then carry validated
                ``parsed`` arguments, or an ``error``).

        Raises:
            InvalidRequestError: malformed messages or parameters (before any call).
            DeadlineExceeded: the deadline passed.
            AllProvidersFailed: every attempt failed (rejected answers included, as
                :class:`~asyncllm.AnswerRejected`).
            ProviderError: a failure that no other attempt could fix (bad request, auth).
            StructuredOutputError: the answer does not fit ``response_format`` (after
                ``output_retries`` more tries); it carries the raw text.
        """
        if (
            isinstance(output_retries, bool)
            or not isinstance(output_retries, int)
            or (output_retries < 0)
        ):
            raise InvalidRequestError(f"output_retries must be an int >= 0, got {output_retries!r}")
        params, typed = split_typed(params)
        request = build_request(messages, params)
        strat, limits = self._prepare(strategy, timeout, cache)
        checks = coerce_accept(accept)
        if typed is None:
            return await self._pipeline.complete(request, strat, limits, cache, cache_ttl, checks)
        return await self._pipeline.complete_typed(
            request, strat, limits, cache, cache_ttl, checks, typed, output_retries
        )

    def stream(
        self,
        messages: object,
        *,
        strategy: StrategyLike | None = None,
        timeout: float | Timeout | None = None,
        cache: CacheMode = "use",
        cache_ttl: float | None = None,
        accept: Accept | None = None,
        **params: Any,
    ) -> ClientStream:
        """Stream a chat request: ``async with client.stream(...) as s: async for c in s``.

        Races and hedges commit on the first token. Errors before any token fall over (and
        raise from ``async with`` when every attempt failed); after it, a broken stream
        raises :class:`~asyncllm.StreamBroken` with the partial text.

        Acceptance predicates (``accept=``, or the client's) judge the whole answer, so on
        a stream they run when it ends, after its chunks were delivered: a rejection
        raises :class:`~asyncllm.AnswerRejected` from the ``async for`` (no fallback: the
        stream had committed), the answer is not cached, its cost is booked.
        """
        params, typed = split_typed(params)
        request = build_request(messages, params)
        strat, limits = self._prepare(strategy, timeout, cache)
        checks = coerce_accept(accept)
        return ClientStream(self._pipeline, request, strat, limits, cache, cache_ttl, checks, typed)

    def map(
        self,
        requests: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        ordered: bool = False,
        lookahead: int | None = None,
        strategy: StrategyLike | None = None,
        timeout: float | Timeout | None = None,
        cache: CacheMode = "use",
        cache_ttl: float | None = None,
        accept: Accept | None = None,
        **params: Any,
    ) -> FanOut:
        """Run many requests, ``concurrency`` at a time, each through the strategy.

        Use as ``async with client.map(items) as results: async for r in results: ...``;
        each ``r`` is a :class:`~asyncllm.orchestrator.Result` (``index``, ``request``,
        ``response``, ``error``). The input is read lazily; a failed request does not stop
        the others; leaving the block cancels whatever is still in flight.
        """
        self._prepare(strategy, timeout, cache)
        coerce_accept(accept)  # a bad predicate fails here, not once per item

        async def one(item: Any) -> Response:
            return await self.complete(
                item,
                strategy=strategy,
                timeout=timeout,
                cache=cache,
                cache_ttl=cache_ttl,
                accept=accept,
                **params,
            )

        return FanOut(one, requests, concurrency=concurrency, ordered=ordered, lookahead=lookahead)

    # -- feedback -------------------------------------------------------------------------

    def feedback(
        self,
        request_id: str,
        *,
        score: float | None = None,
        label: str | None = None,
        comment: str | None = None,
    ) -> FeedbackInfo:
        """Attach a score or a label to a finished request, for the observers.

        The request is found by its id (``Response.request_id``, ``ClientStream.request_id``
        or :func:`~asyncllm.orchestrator.current_request_id`). The observers receive a
        :class:`~asyncllm._hooks.FeedbackInfo` with the request's provider, model, latency
        and cost next to the score: the metrics count it per provider and model, the logs
        print ``llm.feedback``, OpenTelemetry records ``asyncllm.client.feedback.score``.
        The client remembers its last 10,000 successful requests; feedback on an older
        (or another process's) request is still recorded, without those fields.

        Args:
            request_id: The request's id.
            score: Any finite number (thumbs up/down as 1/-1, an evaluator's 0..1...).
            label: A short category (``"wrong_language"``, ``"thumbs_down"``...).
            comment: Free text for the logs (not counted in metrics).

        Returns:
            What the observers received.

        Raises:
            InvalidRequestError: no score and no label, or a malformed argument.
        """
        info = build_feedback(self._ledger, request_id, score, label, comment)
        hook = getattr(self._rt.observer, "feedback", None)
        if hook is not None:
            hook(info)
        return info

    # -- introspection --------------------------------------------------------------------

    def statistics(self) -> dict[str, Any]:
        """Per provider: breaker, latency quantiles, limiter and driver counters, answer
        quality (with metrics on; per model in ``metrics``); and the client's
        request/attempt counters, retry and hedge allowance levels (``retry_allowance``,
        ``hedge_allowance``; ``retry_budget``/``hedge_budget`` are deprecated aliases)."""
        rt = self._rt
        out: dict[str, Any] = {
            "providers": {s.name: s.statistics() for s in rt.slots},
            "counters": dict(rt.counters),
            "retry_allowance": rt.retry_bucket.statistics(),
            "hedge_allowance": {
                f"{ratio:g}/{burst:g}": b.statistics()
                for (ratio, burst), b in rt.hedge_buckets.items()
            },
            "http": self._http.statistics(),
        }
        # Deprecated names of the two entries above (the same objects), kept for a release.
        out["retry_budget"] = out["retry_allowance"]
        out["hedge_budget"] = out["hedge_allowance"]
        if self._cache is not None:
            out["cache"] = self._cache.statistics()
        if self._metrics is not None:
            out["metrics"] = self._metrics.statistics()
            for name, quality in self._metrics.quality().items():
                if name in out["providers"]:
                    out["providers"][name]["quality"] = quality
        budget_stats = getattr(rt.budget, "statistics", None)
        if callable(budget_stats):
            out["budget"] = budget_stats()
        return out
