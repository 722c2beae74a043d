"""A log-bucketed histogram for latency quantiles: O(1) to record, small, mergeable.

Values fall into buckets whose bounds grow by a factor of ``2 ** (1 / 16)`` (~4.4 %). A
quantile is answered with the geometric middle of its bucket, clamped to the exact minimum
and maximum seen, so it is within ~2.2 % (relative) of the true sample quantile
(nearest-rank). Memory is one dict entry per occupied bucket: 1 ms to 100 s spans ~270
buckets at most. Non-positive values are counted in a zero bucket.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LogHistogram"]

_SUB = 16  # buckets per power of two
_LOG2 = math.log2


class LogHistogram:
    """Counts values in log-spaced buckets; answers quantiles within ~2.2 %."""

    __slots__ = ("_buckets", "count", "max", "min", "sum", "zeros")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.zeros = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Record one value."""
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value > 0:
            i = math.floor(_LOG2(value) * _SUB)
            b = self._buckets
            b[i] = b.get(i, 0) + 1
        else:
            self.zeros += 1

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1) by nearest rank, or ``None`` when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = self.zeros
        if rank <= seen:
            return min(self.min, 0.0)
        for i in sorted(self._buckets):
            seen += self._buckets[i]
            if seen >= rank:
                mid = 2 ** ((i + 0.5) / _SUB)
                return min(max(mid, self.min), self.max)
        return self.max  # unreachable unless counts were edited

    def merge(self, other: LogHistogram) -> None:
        """Add ``other``'s values to this histogram."""
        for i, n in other._buckets.items():
            self._buckets[i] = self._buckets.get(i, 0) + n
        self.count += other.count
        self.zeros += other.zeros
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def summary(self) -> dict[str, Any]:
        """``count``, ``mean``, ``min``, ``max``, ``p50``, ``p95``, ``p99`` (``None``: empty)."""
        if not self.count:
            return {"count": 0, "mean": None, "min": None, "max": None,
                    "p50": None, "p95": None, "p99": None}  # fmt: skip
        return {
            "count": self.count,
            "mean": self.sum / self.count,
            "min": self.min,
            "max": self.max,
            "p50": self.quantile(0.50),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
        }
