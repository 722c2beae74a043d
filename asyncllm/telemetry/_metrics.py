"""In-process metrics: :class:`MetricsObserver`, cheap enough to leave on.

Counts per provider and model (from attempts) and per logical request, with latency and
time-to-first-token quantiles from :class:`LogHistogram` (within ~2.2 %). Costs and tokens
include attempts that lost a race or were cancelled, as far as their usage is known
(``AttemptInfo.usage``): that money was spent even though nobody read the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._logging import get_logger
from ._histogram import LogHistogram
from ._quality import FeedbackCounts, QualityCounts

if TYPE_CHECKING:
    from .._hooks import AttemptInfo, FeedbackInfo, Pricing, RequestInfo
    from .._types import Response, Usage

__all__ = ["MetricsObserver"]

_log = get_logger("asyncllm.telemetry")


def error_type(error: BaseException) -> str:
    """The ``error.type`` of an exception: its class name, ``"cancelled"`` for cancellation."""
    name = type(error).__name__
    return "cancelled" if name in ("CancelledError", "Cancelled") else name


class _Series:
    """Counters of one (provider, model)."""

    __slots__ = (
        "cache_hits",
        "cache_read_tokens",
        "cache_write_tokens",
        "cancelled",
        "cost_unknown",
        "cost_usd",
        "errors",
        "fallbacks",
        "feedback",
        "hedges_fired",
        "hedges_won",
        "in_flight",
        "input_tokens",
        "latency",
        "lost",
        "output_tokens",
        "quality",
        "races",
        "races_won",
        "requests",
        "retries",
        "successes",
        "ttft",
    )

    def __init__(self) -> None:
        self.requests = self.successes = self.cancelled = self.lost = 0
        self.retries = self.fallbacks = self.hedges_fired = self.hedges_won = 0
        self.races = self.races_won = self.cache_hits = self.in_flight = 0
        self.input_tokens = self.output_tokens = 0
        self.cache_read_tokens = self.cache_write_tokens = 0
        self.cost_usd = 0.0
        self.cost_unknown = 0
        self.errors: dict[str, int] = {}
        self.latency = LogHistogram()
        self.ttft = LogHistogram()
        self.quality = QualityCounts()
        self.feedback = FeedbackCounts()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "successes": self.successes,
            "errors": dict(self.errors),
            "cancelled": self.cancelled,
            "lost": self.lost,
            "in_flight": self.in_flight,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "hedges": {"fired": self.hedges_fired, "won": self.hedges_won},
            "races": {"started": self.races, "won": self.races_won},
            "cache_hits": self.cache_hits,
            "latency_s": self.latency.summary(),
            "ttft_s": self.ttft.summary(),
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "cache_read": self.cache_read_tokens,
                "cache_write": self.cache_write_tokens,
            },
            "cost_usd": self.cost_usd,
            "cost_unknown": self.cost_unknown,
            "quality": self.quality.stats(),
            "feedback": self.feedback.stats(),
        }


class MetricsObserver:
    """An :class:`~asyncllm._hooks.Observer` keeping counters and latency quantiles.

    Per provider and model (every attempt): requests sent, successes, errors by exception
    class, cancelled and lost (a race or hedge another attempt won) attempts, retries,
    fallbacks, hedges fired and won, race attempts and wins, cache hits, latency and
    time-to-first-token (p50/p95/p99), tokens and cost; the quality of the answers
    (``quality``: finish reasons, empty answers, invalid structured output and tool
    arguments, answers rejected by the acceptance predicate by reason code, output tokens
    per answer, and rates) and the users' ``feedback`` (scores, labels, the rated
    requests' latency and cost). Per logical request: started, succeeded, failed (by error
    class), cancelled by the caller, abandoned (a stream left before its end), cache hits,
    end-to-end latency, strategies, feedback.

    Args:
        pricing: Prices an attempt whose ``cost_usd`` the orchestrator left unset but whose
            usage is known (optional).
        clock: Monotonic clock for end-to-end request latency (attempt latencies come from
            the ``AttemptInfo`` timestamps).

    Example::

        metrics = MetricsObserver()
        client = Client(..., observers=[metrics])
        ...
        metrics.statistics()["providers"]["openai"]["gpt-4o-mini"]["latency_s"]["p95"]
    """

    def __init__(
        self, *, pricing: Pricing | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pricing = pricing
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._series: dict[tuple[str, str], _Series] = {}
        self._open: dict[str, float] = {}
        self._started = self._succeeded = self._failed = self._cache_hits = 0
        self._cancelled = self._abandoned = 0
        self._attempts = 0
        self._errors: dict[str, int] = {}
        self._strategies: dict[str, int] = {}
        self._latency = LogHistogram()
        self._feedback = FeedbackCounts()

    def _s(self, provider: str, model: str) -> _Series:
        key = (provider, model)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series()
        return s

    # -- Observer ----------------------------------------------------------------------

    def request_started(self, info: RequestInfo) -> None:
        """Count a logical request and start its end-to-end clock."""
        self._started += 1
        self._open[info.request_id] = self._clock()
        st = self._strategies
        st[info.strategy] = st.get(info.strategy, 0) + 1

    def attempt_started(self, info: AttemptInfo) -> None:
        """Count an attempt by its role."""
        s = self._s(info.provider, info.model)
        s.requests += 1
        s.in_flight += 1
        role = info.role
        if role == "retry":
            s.retries += 1
        elif role == "hedge":
            s.hedges_fired += 1
        elif role == "race":
            s.races += 1
        elif role == "fallback":
            s.fallbacks += 1

    def attempt_first_token(self, info: AttemptInfo) -> None:
        """Nothing to do: time to first token is read from the finished attempt."""

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Count the outcome; record latency, time to first token, tokens and cost."""
        try:
            self._attempt_finished(info, response, error)
        except Exception:  # an observer must never break a request
            _log.exception("metrics.observer_failed", hook="attempt_finished")

    def _attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        self._attempts += 1
        s = self._s(info.provider, info.model)
        s.in_flight -= 1
        outcome = info.outcome
        if outcome is None and error is None and response is not None:
            outcome = "success"
        if outcome == "success":
            s.successes += 1
            if info.role == "hedge":
                s.hedges_won += 1
            elif info.role == "race":
                s.races_won += 1
            if info.finished is not None:
                s.latency.add(info.finished - info.started)
        elif outcome == "lost":
            s.lost += 1
        elif outcome == "cancelled" or (error is not None and error_type(error) == "cancelled"):
            s.cancelled += 1
        else:
            name = error_type(error) if error is not None else "unknown"
            s.errors[name] = s.errors.get(name, 0) + 1
        if info.first_token_at is not None:
            s.ttft.add(info.first_token_at - info.started)
        if info.quality is not None:
            s.quality.add(info.quality)
        usage = info.usage if info.usage is not None else (response.usage if response else None)
        if usage is not None:
            self._account(s, info, usage, response)

    def _account(
        self, s: _Series, info: AttemptInfo, usage: Usage, response: Response | None
    ) -> None:
        s.input_tokens += usage.input_tokens
        s.output_tokens += usage.output_tokens
        s.cache_read_tokens += usage.cache_read_tokens
        s.cache_write_tokens += usage.cache_write_tokens
        cost = info.cost_usd
        if cost is None and response is not None:
            cost = response.cost_usd
        if cost is None and self._pricing is not None:
            cost = self._pricing.cost(
                provider=info.provider, kind=info.kind, model=info.model, usage=usage, local=False
            )
        if cost is None:
            s.cost_unknown += 1
        else:
            s.cost_usd += cost

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Count the logical outcome, cache hits and end-to-end latency."""
        t0 = self._open.pop(info.request_id, None)
        if t0 is not None:
            self._latency.add(self._clock() - t0)
        if response is None:
            if error is None or not isinstance(error, Exception):
                # Cancelled by the caller, or a stream left before its end ("abandoned"):
                # the caller's decision, not a failure.
                outcome = "cancelled" if error is not None else info.extra.get("outcome")
                if outcome == "abandoned":
                    self._abandoned += 1
                else:
                    self._cancelled += 1
                return
            self._failed += 1
            name = error_type(error)
            self._errors[name] = self._errors.get(name, 0) + 1
            return
        self._succeeded += 1
        if response.cached:
            self._cache_hits += 1
            self._s(response.provider, response.model).cache_hits += 1

    def feedback(self, info: FeedbackInfo) -> None:
        """Count a score or label, under the provider and model that answered (if known)."""
        try:
            self._feedback.add(info)
            if info.provider is not None:
                self._s(info.provider, info.model or "").feedback.add(info)
        except Exception:  # an observer must never break its caller
            _log.exception("metrics.observer_failed", hook="feedback")

    # -- read-out ----------------------------------------------------------------------

    def quality(self) -> dict[str, dict[str, Any]]:
        """Answer quality per provider, all its models together (``quality`` per model is
        in :meth:`statistics`)."""
        merged: dict[str, QualityCounts] = {}
        for (provider, _), s in self._series.items():
            q = merged.get(provider)
            if q is None:
                q = merged[provider] = QualityCounts()
            q.merge(s.quality)
        return {p: q.stats() for p, q in sorted(merged.items())}

    def statistics(self) -> dict[str, Any]:
        """Everything as a nested dict: ``requests``, ``providers[p][model]``, ``totals``,
        ``feedback`` (all feedback, including requests no longer remembered)."""
        providers: dict[str, dict[str, Any]] = {}
        cost = 0.0
        tokens_in = tokens_out = 0
        for (p, m), s in sorted(self._series.items()):
            providers.setdefault(p, {})[m] = s.stats()
            cost += s.cost_usd
            tokens_in += s.input_tokens
            tokens_out += s.output_tokens
        return {
            "requests": {
                "started": self._started,
                "succeeded": self._succeeded,
                "failed": self._failed,
                "cancelled": self._cancelled,
                "abandoned": self._abandoned,
                "in_flight": len(self._open),
                "errors": dict(self._errors),
                "cache_hits": self._cache_hits,
                "strategies": dict(self._strategies),
                "latency_s": self._latency.summary(),
            },
            "providers": providers,
            "totals": {
                "attempts": self._attempts,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cost_usd": cost,
            },
            "feedback": self._feedback.stats(),
        }
