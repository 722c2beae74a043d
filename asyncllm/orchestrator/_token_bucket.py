"""Token buckets that keep extra attempts (retries, hedges) a small share of the traffic.

Every logical request *earns* ``ratio`` of a token; every extra attempt *spends* a whole
one. So when everything fails, retries settle at ``ratio`` of the requests (the SRE book's
per-client "retry budget"; asyncllm calls it an *allowance*, keeping "budget" for
spend) instead of multiplying the load on a struggling provider, while
the bucket's capacity lets a short burst through. An optional ``per_second`` refill is the
floor that keeps a quiet client able to retry at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["TokenBucket"]


class TokenBucket:
    """A ratio token bucket.

    Args:
        ratio: Tokens earned per request.
        capacity: Most tokens held (the burst); the bucket starts full.
        per_second: Tokens earned per second of clock time.
        clock: Seconds, monotonic (the client's clock); read only when ``per_second > 0``.
    """

    __slots__ = (
        "_clock",
        "_tokens",
        "_updated",
        "capacity",
        "denied",
        "per_second",
        "ratio",
        "spent",
    )

    def __init__(
        self,
        *,
        ratio: float,
        capacity: float,
        per_second: float = 0.0,
        clock: Callable[[], float],
    ) -> None:
        self.ratio = ratio
        self.capacity = capacity
        self.per_second = per_second
        self._clock = clock
        self._tokens = capacity
        self._updated: float | None = None
        self.spent = 0
        self.denied = 0

    def deposit(self) -> None:
        """A request was made: earn ``ratio`` of a token."""
        tokens = self._tokens + self.ratio
        self._tokens = tokens if tokens < self.capacity else self.capacity

    def _refill(self) -> None:
        if self.per_second <= 0:
            return
        now = self._clock()
        if self._updated is not None and now > self._updated:
            self._tokens = min(
                self.capacity, self._tokens + (now - self._updated) * self.per_second
            )
        self._updated = now

    def try_spend(self) -> bool:
        """Spend a token for one extra attempt; ``False`` when the allowance is exhausted."""
        self._refill()
        if self._tokens >= 1.0 - 1e-9:  # ten deposits of 0.1 make a token, despite floats
            self._tokens = max(0.0, self._tokens - 1.0)
            self.spent += 1
            return True
        self.denied += 1
        return False

    def refund(self) -> None:
        """Give back a token whose attempt never went out."""
        self._tokens = min(self.capacity, self._tokens + 1.0)
        self.spent -= 1

    @property
    def level(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def statistics(self) -> dict[str, Any]:
        """Level, capacity, and how many extra attempts were allowed and denied."""
        return {
            "level": round(self.level, 3),
            "capacity": self.capacity,
            "ratio": self.ratio,
            "spent": self.spent,
            "denied": self.denied,
        }
