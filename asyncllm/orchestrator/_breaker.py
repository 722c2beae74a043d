"""A per-provider circuit breaker: closed → open → half-open → closed.

Outcomes are counted in time buckets (``window / buckets`` seconds each), so recording is
O(1) and the window slides without keeping every sample. Only failures that say the
*provider* is unwell count (5xx, overload, timeouts, connection errors, broken or
malformed streams); 429s belong to the rate limiter and bad requests to the caller.

Answers rejected by the acceptance predicate are counted apart, against their own
threshold (``BreakerPolicy.rejection_rate``, off by default): a provider that answers
badly often enough is cooled down and probed like one that errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from .._exceptions import CircuitOpen
from ._policy import BreakerPolicy

__all__ = ["CircuitBreaker"]

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """The breaker of one provider.

    Args:
        name: Provider name (for :class:`~asyncllm.CircuitOpen`).
        policy: Thresholds.
        clock: Monotonic seconds (the client's clock).
    """

    __slots__ = (
        "_bucket_span",
        "_buckets",
        "_clock",
        "_head",
        "_opened_at",
        "_probes",
        "name",
        "opened",
        "policy",
        "rejected",
        "state",
    )

    def __init__(self, name: str, policy: BreakerPolicy, clock: Callable[[], float]) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self.state: State = "closed"
        self._bucket_span = policy.window / policy.buckets
        # Each bucket: [bucket number, attempts, failures, rejections].
        self._buckets: list[list[int]] = [[-1, 0, 0, 0] for _ in range(policy.buckets)]
        self._head = -1
        self._opened_at = 0.0
        self._probes = 0
        self.opened = 0
        self.rejected = 0

    def acquire(self) -> bool:
        """Let an attempt through or raise :class:`~asyncllm.CircuitOpen`.

        Returns:
            True when the attempt is a half-open probe: its outcome decides the state, and
            it must end with :meth:`success`, :meth:`failure` or :meth:`abandon`.
        """
        if self.state == "closed":
            return False
        now = self._clock()
        if self.state == "open":
            wait = self._opened_at + self.policy.cooldown - now
            if wait > 0:
                self.rejected += 1
                raise CircuitOpen(self.name, wait)
            self.state = "half_open"
            self._probes = 0
        if self._probes >= self.policy.half_open_probes:
            self.rejected += 1
            raise CircuitOpen(self.name, 0.0)
        self._probes += 1
        return True

    def allows(self) -> bool:
        """Whether :meth:`acquire` would let an attempt through now (takes nothing)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self._clock() >= self._opened_at + self.policy.cooldown
        return self._probes < self.policy.half_open_probes

    def _bucket(self) -> list[int]:
        number = int(self._clock() / self._bucket_span)
        slot = self._buckets[number % len(self._buckets)]
        if slot[0] != number:
            slot[0], slot[1], slot[2], slot[3] = number, 0, 0, 0
        self._head = number
        return slot

    def success(self, probe: bool) -> None:
        """An attempt succeeded (or failed in a way that says nothing about the provider)."""
        if probe:
            self._close()
            return
        if self.state == "closed":
            self._bucket()[1] += 1

    def failure(self, probe: bool) -> None:
        """An attempt failed in a way that says the provider is unwell."""
        self._count_bad(probe, 2, self.policy.failure_rate)

    def rejection(self, probe: bool) -> None:
        """An attempt's answer was rejected by the acceptance predicate.

        With no ``rejection_rate`` the provider did answer: a success as far as the
        breaker is concerned (still counted in ``window_rejections``).
        """
        threshold = self.policy.rejection_rate
        if threshold is None:
            if self.state == "closed":
                self._bucket()[3] += 1
            self.success(probe)
            return
        self._count_bad(probe, 3, threshold)

    def _count_bad(self, probe: bool, column: int, threshold: float) -> None:
        # A failed probe (or any bad outcome while half-open) opens at once; while closed,
        # count the attempt in its window column (2: failures, 3: rejections) and open once
        # that column's share of the window's attempts reaches the threshold.
        if probe or self.state == "half_open":
            self._open()
            return
        if self.state != "closed":
            return
        slot = self._bucket()
        slot[1] += 1
        slot[column] += 1
        totals = self._totals()
        attempts, bad = totals[0], totals[column - 1]
        if attempts >= self.policy.min_volume and bad >= threshold * attempts:
            self._open()

    def abandon(self, probe: bool) -> None:
        """An attempt ended without a verdict (cancelled): free its probe slot."""
        if probe and self.state == "half_open" and self._probes > 0:
            self._probes -= 1

    def _totals(self) -> tuple[int, int, int]:
        oldest = self._head - len(self._buckets) + 1
        attempts = failures = rejections = 0
        for number, a, f, r in self._buckets:
            if number >= oldest:
                attempts += a
                failures += f
                rejections += r
        return attempts, failures, rejections

    def _open(self) -> None:
        self.state = "open"
        self._opened_at = self._clock()
        self._probes = 0
        self.opened += 1

    def _close(self) -> None:
        self.state = "closed"
        self._probes = 0
        for slot in self._buckets:
            slot[0], slot[1], slot[2], slot[3] = -1, 0, 0, 0

    def statistics(self) -> dict[str, Any]:
        """State, attempts, failures and rejected answers in the window, times opened,
        attempts refused while open (``rejected``)."""
        if self.state == "closed" and self._head >= 0:
            self._bucket()  # slide the window to now before reading it
        attempts, failures, rejections = self._totals()
        return {
            "state": self.state,
            "window_attempts": attempts,
            "window_failures": failures,
            "window_rejections": rejections,
            "opened": self.opened,
            "rejected": self.rejected,
        }
