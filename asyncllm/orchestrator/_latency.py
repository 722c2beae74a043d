"""A rolling latency window with censored samples, for adaptive hedge delays.

Hedging hides the latencies it is meant to learn: a slow primary that loses to its backup
is cancelled, so its true latency is never seen, only that it exceeded the time it ran
(a *right-censored* sample). Dropping those samples, or recording the time they ran as if
it were their latency, biases the quantile low, the delay drifts down, and the client hedges
more and more. So the window keeps censored samples as such and estimates quantiles with
the Kaplan-Meier product-limit estimator, which accounts for them: with no censored sample
it is exactly the empirical (nearest-rank) quantile.

``add`` is the only per-attempt cost (a C-level ``insort`` into a list of at most ``size``
entries); the quantile is recomputed at most every ``refresh`` new samples and cached.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import Any

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """The last ``size`` latencies of one provider and model.

    Args:
        size: Samples kept.
        refresh: New samples after which a cached quantile is recomputed.
    """

    __slots__ = ("_cache", "_order", "_sorted", "refresh", "size", "total")

    def __init__(self, size: int = 512, *, refresh: int = 8) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.refresh = max(1, refresh)
        # Samples are (seconds, censored): censored=True means "at least this long".
        self._order: deque[tuple[float, bool]] = deque()
        self._sorted: list[tuple[float, bool]] = []
        self._cache: dict[float, tuple[int, float]] = {}
        self.total = 0

    def __len__(self) -> int:
        return len(self._order)

    def add(self, seconds: float, *, censored: bool = False) -> None:
        """Record one latency; ``censored`` when the attempt was cut short after
        ``seconds`` (it would have taken longer)."""
        sample = (seconds, censored)
        if len(self._order) >= self.size:
            old = self._order.popleft()
            del self._sorted[bisect_left(self._sorted, old)]
        self._order.append(sample)
        insort(self._sorted, sample)
        self.total += 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (Kaplan-Meier), or ``None`` when empty.

        When censoring leaves the estimate undefined (the survival never falls to
        ``1 - q`` within the samples), the largest sample is returned: a lower bound.
        """
        if not self._sorted:
            return None
        cached = self._cache.get(q)
        if cached is not None and self.total - cached[0] < self.refresh:
            return cached[1]
        value = self._kaplan_meier(q)
        self._cache[q] = (self.total, value)
        return value

    def _kaplan_meier(self, q: float) -> float:
        samples = self._sorted
        at_risk = len(samples)
        survival = 1.0
        target = 1.0 - q + 1e-12
        for seconds, censored in samples:
            if not censored:
                survival *= 1.0 - 1.0 / at_risk
                if survival <= target:
                    return seconds
            at_risk -= 1
        return samples[-1][0]

    def statistics(self) -> dict[str, Any]:
        """Sample count (and how many are censored) and p50/p95/p99 (seconds)."""
        return {
            "samples": len(self._order),
            "censored": sum(1 for _, c in self._order if c),
            "p50": self.quantile(0.50),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
        }
