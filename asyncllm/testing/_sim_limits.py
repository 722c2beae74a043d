"""The simulator's own rate limits (continuous token buckets) and the headers reporting them.

Each limit is a bucket holding at most ``limit`` units that refills at ``limit / period`` units
a second. A request needs one request unit and ``input + planned output`` token units; it is
admitted only when *both* buckets hold enough, and then takes from both. Otherwise the answer
is a 429 whose retry-after is the time until both would hold enough.

Limits that are not configured are still tracked (with large capacities, never enforced) so
that every response carries plausible rate-limit headers, as the real APIs send.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "DEFAULT_RPM",
    "DEFAULT_TPM",
    "LimitSnapshot",
    "RateLimits",
    "anthropic_headers",
    "openai_duration",
    "openai_headers",
    "rfc3339",
]

#: Capacities reported (but not enforced) when no limit is configured.
DEFAULT_RPM = 10_000
DEFAULT_TPM = 10_000_000


class _Bucket:
    __slots__ = ("capacity", "enforced", "level", "rate", "stamp")

    def __init__(self, capacity: int, period: float, enforced: bool, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / period
        self.level = float(capacity)
        self.stamp = now
        self.enforced = enforced

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now or the bucket is not enforced)."""
        if not self.enforced or self.level >= amount:
            return 0.0
        if amount > self.capacity:
            # It can never fit; a short retry-after would make clients spin. Real APIs answer
            # "request too large"; the simulator says: wait one whole period.
            return self.capacity / self.rate
        return max((amount - self.level) / self.rate, 0.001)

    def take(self, amount: float) -> None:
        # Unenforced buckets only feed the headers: they bottom out at zero.
        self.level = max(0.0, self.level - amount)

    def reset_in(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.level) / self.rate)


@dataclass(slots=True, frozen=True)
class LimitSnapshot:
    """Rate-limit state right after a request was admitted or refused (for headers)."""

    limit_requests: int
    remaining_requests: int
    reset_requests: float
    limit_tokens: int
    remaining_tokens: int
    reset_tokens: float


class RateLimits:
    """Request and token buckets of one simulator.

    Args:
        rpm: Requests allowed per ``period`` (``None``: not enforced).
        tpm: Tokens allowed per ``period`` (``None``: not enforced).
        period: Seconds of one limit period.
        now: Current time (the simulator's clock, ``loop.time()``).
    """

    __slots__ = ("_requests", "_tokens", "period")

    def __init__(self, rpm: int | None, tpm: int | None, period: float, now: float) -> None:
        if period <= 0:
            raise ValueError("period must be > 0")
        for name, v in (("rpm", rpm), ("tpm", tpm)):
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1")
        self.period = period
        self._requests = _Bucket(rpm or DEFAULT_RPM, period, rpm is not None, now)
        self._tokens = _Bucket(tpm or DEFAULT_TPM, period, tpm is not None, now)

    def admit(self, tokens: int, now: float) -> tuple[float, str]:
        """Take one request and ``tokens`` tokens.

        Returns:
            ``(0.0, "")`` when admitted, else ``(retry_after_seconds, "requests" | "tokens")``
            naming the limit that refused it (nothing is taken then).
        """
        r, t = self._requests, self._tokens
        r.refill(now)
        t.refill(now)
        wait_r = r.wait_for(1.0)
        wait_t = t.wait_for(float(tokens))
        if wait_r or wait_t:
            return max(wait_r, wait_t), ("requests" if wait_r >= wait_t else "tokens")
        r.take(1.0)
        t.take(float(tokens))
        return 0.0, ""

    def snapshot(self, now: float) -> LimitSnapshot:
        """Current limits, remaining capacity and seconds until full."""
        r, t = self._requests, self._tokens
        r.refill(now)
        t.refill(now)
        return LimitSnapshot(
            limit_requests=int(r.capacity),
            remaining_requests=max(0, int(r.level)),
            reset_requests=r.reset_in(),
            limit_tokens=int(t.capacity),
            remaining_tokens=max(0, int(t.level)),
            reset_tokens=t.reset_in(),
        )


def openai_duration(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it.

    Examples: ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``.
    """
    if seconds < 1.0:
        ms = math.ceil(seconds * 1000)
        return f"{ms}ms" if ms else "0s"
    if seconds < 60.0:
        return f"{round(seconds, 3):g}s"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s"


def openai_headers(snap: LimitSnapshot) -> list[tuple[str, str]]:
    """OpenAI's ``x-ratelimit-*`` headers."""
    return [
        ("x-ratelimit-limit-requests", str(snap.limit_requests)),
        ("x-ratelimit-limit-tokens", str(snap.limit_tokens)),
        ("x-ratelimit-remaining-requests", str(snap.remaining_requests)),
        ("x-ratelimit-remaining-tokens", str(snap.remaining_tokens)),
        ("x-ratelimit-reset-requests", openai_duration(snap.reset_requests)),
        ("x-ratelimit-reset-tokens", openai_duration(snap.reset_tokens)),
    ]


def rfc3339(wall: float) -> str:
    """A UTC RFC 3339 timestamp with seconds, as Anthropic sends (``2025-01-01T00:00:00Z``)."""
    return datetime.fromtimestamp(math.ceil(wall), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def anthropic_headers(snap: LimitSnapshot, wall_now: float) -> list[tuple[str, str]]:
    """Anthropic's ``anthropic-ratelimit-*`` headers (tokens also as input/output variants)."""
    tok_limit, tok_left = str(snap.limit_tokens), str(snap.remaining_tokens)
    tok_reset = rfc3339(wall_now + snap.reset_tokens)
    out = [
        ("anthropic-ratelimit-requests-limit", str(snap.limit_requests)),
        ("anthropic-ratelimit-requests-remaining", str(snap.remaining_requests)),
        ("anthropic-ratelimit-requests-reset", rfc3339(wall_now + snap.reset_requests)),
        ("anthropic-ratelimit-tokens-limit", tok_limit),
        ("anthropic-ratelimit-tokens-remaining", tok_left),
        ("anthropic-ratelimit-tokens-reset", tok_reset),
    ]
    for kind in ("input", "output"):
        out.append((f"anthropic-ratelimit-{kind}-tokens-limit", tok_limit))
        out.append((f"anthropic-ratelimit-{kind}-tokens-remaining", tok_left))
        out.append((f"anthropic-ratelimit-{kind}-tokens-reset", tok_reset))
    return out
