"""The orchestrator's state: per client (:class:`Runtime`), per provider
(:class:`ProviderSlot`) and per logical request (:class:`Call`).

Everything that can be decided once is decided when the client is built (slots, the
composite observer, default models), so a request only allocates its :class:`Call`.
The :class:`Call` holds the one attempt counter that bounds retries, hedges and fallbacks
together, and plans the next attempt after a failure.
"""

from __future__ import annotations

import dataclasses
import math
import random
from asyncio import get_running_loop as _get_running_loop
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import AllProvidersFailed, ConfigurationError
from .._hooks import AttemptRole, Budget, Limiter, NoLimiter, Observer, Pricing, Route
from .._types import DEFAULT_OUTPUT_CAP, output_cap
from ._breaker import CircuitBreaker
from ._context import new_request_id
from ._latency import LatencyWindow
from ._retry import retry_after_of
from ._token_bucket import TokenBucket

if TYPE_CHECKING:
    from .._timeout import Timeout
    from .._types import ChatRequest, Response
    from ..providers import Provider
    from ..quality import Checks
    from ._policy import BreakerPolicy, Hedge, RetryPolicy

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "Call",
    "Leg",
    "Plan",
    "ProviderSlot",
    "Runtime",
    "loop_time",
]

#: Output tokens assumed for limiter reservations when a request sets no ``max_tokens``:
#: the library's one default (see :func:`asyncllm.output_cap`), shared with the budget.
DEFAULT_OUTPUT_TOKENS = DEFAULT_OUTPUT_CAP

Plan = tuple[int, AttemptRole, float]


def loop_time() -> float:
    """The running event loop's clock: what cancel-scope deadlines are measured in.

    (``anyio.current_time()`` reads the same clock through a backend lookup that costs
    more than the rest of a hedge timer; asyncllm runs on asyncio.)
    """
    return _get_running_loop().time()


class ProviderSlot:
    """One provider of a client with its limiter, breaker and latency windows."""

    __slots__ = (
        "_windows",
        "breaker",
        "default_model",
        "index",
        "kind",
        "limiter",
        "local",
        "name",
        "output_cap",
        "provider",
        "window_size",
    )

    def __init__(
        self,
        index: int,
        provider: Provider,
        *,
        limiter: Limiter | None,
        breaker: CircuitBreaker | None,
        window_size: int = 512,
    ) -> None:
        self.index = index
        self.provider = provider
        self.name = provider.name
        self.kind = provider.kind
        self.local = provider.local
        self.default_model = provider.default_model
        # The output cap the provider's wire sends for a request without ``max_tokens``
        # (``default_max_tokens``: Anthropic's requires one), or ``None`` when it sends
        # none. A call gives such a slot the request as sent (see Call.request_for), so the
        # budget and the limiter reserve the very cap the provider is asked for.
        cap = getattr(provider, "default_max_tokens", None)
        self.output_cap: int | None = cap if type(cap) is int and cap > 0 else None
        self.limiter: Limiter = limiter if limiter is not None else NoLimiter()
        self.breaker = breaker
        self.window_size = window_size
        self._windows: dict[tuple[str, bool], LatencyWindow] = {}

    def window(self, model: str, stream: bool) -> LatencyWindow:
        """Latencies of ``model`` here: totals (``stream=False``) or time to first token."""
        key = (model, stream)
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = LatencyWindow(self.window_size)
        return w

    def statistics(self) -> dict[str, Any]:
        """Breaker, latency quantiles per model, limiter and driver counters."""
        latency = {
            f"{model}:{'ttft' if stream else 'total'}": w.statistics()
            for (model, stream), w in self._windows.items()
        }
        out: dict[str, Any] = {
            "kind": self.kind,
            "breaker": self.breaker.statistics() if self.breaker else None,
            "latency": latency,
            "limiter": self.limiter.statistics(),
        }
        stats = getattr(self.provider, "statistics", None)
        if callable(stats):
            out["driver"] = stats()
        return out


class Runtime:
    """What every logical request of one client shares."""

    __slots__ = (
        "_default_route",
        "_names_kinds",
        "accept",
        "budget",
        "clock",
        "counters",
        "default_models",
        "hedge_buckets",
        "observer",
        "pricing",
        "retry",
        "retry_bucket",
        "rng",
        "slots",
    )

    def __init__(
        self,
        slots: Sequence[ProviderSlot],
        *,
        observer: Observer,
        budget: Budget,
        pricing: Pricing,
        retry: RetryPolicy,
        clock: Callable[[], float],
        accept: Checks | None = None,
    ) -> None:
        self.slots = tuple(slots)
        #: The client's acceptance predicates (``accept=``), ``None`` when it has none.
        self.accept = accept
        self.observer = observer
        self.budget = budget
        self.pricing = pricing
        self.retry = retry
        self.clock = clock
        self.rng = retry.rng if retry.rng is not None else random.Random()
        self.retry_bucket = TokenBucket(
            ratio=retry.allowance_ratio,
            capacity=retry.allowance_burst,
            per_second=retry.allowance_per_second,
            clock=clock,
        )
        self.default_models = tuple(s.default_model for s in self.slots)
        self._names_kinds = tuple((s.name, s.kind) for s in self.slots)
        # The route of a request that names no model, built once (``None``: a provider has
        # no default model, so such a request is refused, see :meth:`models_for`).
        self._default_route: Route | None = None
        if None not in self.default_models:
            self._default_route = self.route(self.default_models)  # type: ignore[arg-type]
        self.hedge_buckets: dict[tuple[float, float], TokenBucket] = {}
        # "hedge" counts backups sent; "hedge_scheduled" those the engine started and
        # "hedge_unsent" those cancelled before their request went out (not charged).
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "requests",
                "attempts",
                "primary",
                "retry",
                "hedge",
                "hedge_scheduled",
                "hedge_unsent",
                "fallback",
                "race",
                "lost",
            ),
            0,
        )

    def models_for(self, request: ChatRequest) -> tuple[str, ...]:
        """The model each provider runs ``request`` on, in slot order: resolved here, once
        per request, and passed down (cache key, budget, limiter, pricing, observers).

        Raises:
            ConfigurationError: the request names no model and a provider has no default.
        """
        model = request.model
        if model is not None:
            return (model,) * len(self.slots)
        models = self.default_models
        if None in models:
            name = self.slots[models.index(None)].name
            raise ConfigurationError(
                f"provider {name!r} has no default model and the request names none; "
                f"pass model=... or configure the provider as 'kind:MODEL'"
            )
        return models  # type: ignore[return-value]

    def route(self, models: tuple[str, ...]) -> Route:
        """``(provider name, kind, model)`` of each provider, in slot order."""
        if models is self.default_models and self._default_route is not None:
            return self._default_route
        return tuple((n, k, m) for (n, k), m in zip(self._names_kinds, models, strict=True))

    def hedge_bucket(self, hedge: Hedge) -> TokenBucket:
        """The hedge allowance for these settings (shared by every call that uses them)."""
        key = (hedge.allowance, hedge.burst)
        bucket = self.hedge_buckets.get(key)
        if bucket is None:
            bucket = self.hedge_buckets[key] = TokenBucket(
                ratio=hedge.allowance, capacity=hedge.burst, clock=self.clock
            )
        return bucket


def breaker_for(
    name: str, policy: BreakerPolicy | None, clock: Callable[[], float]
) -> CircuitBreaker | None:
    """A breaker for ``name``, or ``None`` when breakers are off."""
    return None if policy is None else CircuitBreaker(name, policy, clock)


class Leg:
    """One attempt started by a concurrent strategy (race or hedge).

    Attributes:
        admitted_at: Event-loop time its request was sent, once the limiter admitted it
            (``None`` while queued, or when it was cancelled before being sent).
        lost: Set when another leg won and this one is being cancelled.
        charged: A hedge-allowance token was spent on it (refunded if it never went out).
        done: The leg's task has finished.
    """

    __slots__ = (
        "admitted_at",
        "charged",
        "done",
        "index",
        "lost",
        "number",
        "role",
        "scope",
        "wait",
    )

    def __init__(self, index: int, role: AttemptRole, number: int, wait: float) -> None:
        self.index = index
        self.role: AttemptRole = role
        self.number = number
        self.wait = wait
        self.scope = anyio.CancelScope()
        self.lost = False
        self.charged = False
        self.done = False
        self.admitted_at: float | None = None


class Call:
    """One logical request: id, deadline, models, the attempt counter and the errors.

    Made by the pipeline when the request arrives, above the cache (its id and deadline
    cover the whole request, a cache hit included); :meth:`dispatch` readies it for the
    strategy when it goes upstream.
    """

    __slots__ = (
        "accept",
        "allowance_denied",
        "attempt_timeout",
        "attempts",
        "deadline",
        "errors",
        "first_token_timeout",
        "max_attempts",
        "models",
        "request",
        "request_id",
        "response",
        "rt",
        "sent",
        "started",
        "stream",
        "tokens",
        "tries",
        "waits",
    )

    def __init__(
        self,
        rt: Runtime,
        request: ChatRequest,
        models: tuple[str, ...],
        *,
        stream: bool,
        timeout: Timeout,
        accept: Checks | None = None,
    ) -> None:
        self.rt = rt
        self.request = request
        self.stream = stream
        #: The model on each provider, resolved once (:meth:`Runtime.models_for`).
        self.models = models
        # This call's acceptance predicates (its own, else the client's); empty: none.
        self.accept: Checks = accept if accept is not None else (rt.accept or ())
        self.request_id = new_request_id()
        self.started = rt.clock()
        # The deadline is an absolute event-loop time (cancel scopes are), set once here
        # from the request's total timeout; the attempt limits are durations.
        self.deadline = math.inf if timeout.total is None else loop_time() + timeout.total
        self.attempt_timeout = timeout.attempt
        self.first_token_timeout = timeout.first_token
        self.attempts = 0
        self.max_attempts = 0
        self.errors: list[Exception] = []
        #: The answer this call's own strategy got (``complete`` calls), once it has one.
        self.response: Response | None = None
        #: Requests as sent to slots with an output cap (see :meth:`request_for`).
        self.sent: dict[int, ChatRequest] | None = None

    def request_for(self, slot: ProviderSlot) -> ChatRequest:
        """The request as ``slot``'s provider is asked it: the caller's, or for a provider
        whose wire caps the output of a request without ``max_tokens``, that request with
        the cap (and the slot's resolved model) filled in, made once per call. The budget's
        reservation, the limiter's tokens, the wire and the price of an answer without
        usage then all use one number."""
        request = self.request
        cap = slot.output_cap
        if cap is None or request.max_tokens is not None:
            return request
        sent = self.sent
        if sent is None:
            sent = self.sent = {}
        capped = sent.get(slot.index)
        if capped is None:
            capped = sent[slot.index] = dataclasses.replace(
                request, max_tokens=cap, model=self.models[slot.index]
            )
        return capped

    def tokens_for(self, slot: ProviderSlot) -> int:
        """What the limiter reserves on ``slot``: input estimate plus the output cap."""
        if slot.output_cap is None or self.request.max_tokens is not None:
            return self.tokens
        return self.tokens - output_cap(self.request) + slot.output_cap

    def dispatch(self) -> None:
        """Ready the call for its strategy: it goes upstream (not answered by the cache).

        Counts the request, deposits its share of the retry allowance, and sets up the
        attempt counter and the token estimate the limiter reserves. Once per call.
        """
        if self.max_attempts:
            return
        rt = self.rt
        n = len(rt.slots)
        retry = rt.retry
        self.max_attempts = retry.max_attempts or n + retry.max_retries
        self.tries = [0] * n
        self.waits: list[float | None] = [None] * n
        self.allowance_denied = False
        self.tokens = self.request.estimated_input_tokens() + output_cap(self.request)
        rt.counters["requests"] += 1
        rt.retry_bucket.deposit()

    def begin(self, index: int) -> int:
        """Count an attempt on slot ``index``; returns its number (1-based)."""
        self.attempts += 1
        self.tries[index] += 1
        return self.attempts

    def failed(self, index: int, exc: Exception) -> None:
        """Record a failure that fails over."""
        self.errors.append(exc)
        self.waits[index] = retry_after_of(exc)

    def plan_next(self, busy: Sequence[bool] | None = None) -> Plan | None:
        """The attempt to make after a failure, or ``None`` when there is none left.

        A provider not tried yet comes first, at once (role ``fallback``); then a retry of
        the least-tried provider whose breaker allows it (role ``retry``), after a jittered
        backoff or the server's Retry-After (whichever is longer) as long as that fits the
        deadline, and only while the retry allowance has a token. ``busy`` marks providers
        that have an attempt in flight (concurrent strategies), which are skipped.
        The plan is counted at once (:meth:`begin`).
        """
        if self.attempts >= self.max_attempts:
            return None
        slots = self.rt.slots
        tries = self.tries
        for i in range(len(tries)):
            if tries[i] == 0 and not (busy and busy[i]):
                self.begin(i)
                return i, "fallback", 0.0
        retry = self.rt.retry
        now = loop_time()
        for i in sorted(range(len(tries)), key=tries.__getitem__):
            if busy and busy[i]:
                continue
            breaker = slots[i].breaker
            if breaker is not None and not breaker.allows():
                continue
            wait = retry.backoff(tries[i], self.rt.rng)
            server_wait = self.waits[i]
            if server_wait is not None:
                if server_wait > retry.max_retry_after:
                    continue
                wait = max(wait, server_wait)
            if now + wait >= self.deadline:
                continue
            if not self.rt.retry_bucket.try_spend():
                self.allowance_denied = True
                return None
            self.waits[i] = None
            self.begin(i)
            return i, "retry", wait
        return None

    def plan_hedge(self, busy: Sequence[bool], after: int) -> int | None:
        """The provider for a hedge: an idle one after ``after`` in priority order
        (round robin), else the next one even if busy (one provider hedges to itself)."""
        if self.attempts >= self.max_attempts:
            return None
        n = len(self.tries)
        fallback_choice: int | None = None
        for k in range(1, n + 1):
            i = (after + k) % n
            breaker = self.rt.slots[i].breaker
            if breaker is not None and not breaker.allows():
                continue
            if not busy[i]:
                self.begin(i)
                return i
            if fallback_choice is None:
                fallback_choice = i
        if fallback_choice is not None:
            self.begin(fallback_choice)
        return fallback_choice

    def all_failed(self) -> AllProvidersFailed:
        """The error for a request whose every attempt failed."""
        why = " (retry allowance exhausted)" if self.allowance_denied else ""
        names = ", ".join(sorted({getattr(e, "provider", "") or "?" for e in self.errors}))
        last = self.errors[-1] if self.errors else None
        detail = f"; last: {type(last).__name__}: {last}" if last is not None else ""
        return AllProvidersFailed(
            f"all {self.attempts} attempt(s) failed on {names}{why}{detail}", self.errors
        )
