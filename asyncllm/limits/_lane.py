"""One limiter key (a provider, or a provider's model): buckets, concurrency and the queue.

All three dimensions are decided by **one** FIFO queue. The waiter at the head is admitted
only when a request slot, its token reservation and a concurrency slot are all available;
until then everyone behind it waits too. That is what keeps a large token reservation from
being overtaken forever by small ones, at the price that a small request may wait behind a
large one (the same order the provider would see).

Waking is event driven: when the head is blocked by time (a bucket or a pause) one timer is
armed for the moment it fits; when it is blocked by concurrency, the next release wakes it.
Nothing polls.

A release hands its slot on at the event loop's next step, not synchronously: the feedback
the releasing attempt brings back (a 429's ``pause``, rate-limit headers for ``observe``) is
recorded by its caller right *after* it leaves the permit, and must apply to the next
waiter. Handing the slot on at once would send that waiter out into the very 429 that just
came back.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

from .._types import RateLimitInfo
from ._bucket import LeakyBucket
from ._common import Clock
from ._config import RateLimit

__all__ = ["Lane", "Waiter"]


class Waiter:
    """A task waiting in a lane's queue; ``fut`` resolves with the admission time."""

    __slots__ = ("fut", "since", "tokens")

    def __init__(self, fut: asyncio.Future[float], tokens: int, since: float) -> None:
        self.fut = fut
        self.tokens = tokens
        self.since = since


class Lane:
    """Buckets, in-flight count, pause and waiter queue of one limiter key."""

    __slots__ = (
        "acquired",
        "clock",
        "config",
        "corrections",
        "extra_charged",
        "in_flight",
        "last_header_at",
        "max_concurrency",
        "paused_until",
        "provider_limits",
        "queue",
        "rate_limited",
        "refunded",
        "requests",
        "reserved",
        "stale_headers",
        "timer",
        "tokens",
        "wait_max",
        "wait_total",
        "waiting",
        "wake_scheduled",
    )

    def __init__(self, config: RateLimit, clock: Clock) -> None:
        now = clock()
        self.clock = clock
        self.config = config
        self.requests = (
            None
            if config.rpm is None
            else LeakyBucket(config.rpm * config.burst, config.rpm / config.period, now)
        )
        self.tokens = (
            None
            if config.tpm is None
            else LeakyBucket(config.tpm * config.burst, config.tpm / config.period, now)
        )
        self.max_concurrency = config.max_concurrency
        self.in_flight = 0
        self.paused_until = -math.inf
        self.queue: deque[Waiter] = deque()
        self.waiting = 0  # live waiters; cancelled ones leave the deque lazily
        self.timer: asyncio.TimerHandle | None = None
        self.wake_scheduled = False
        self.last_header_at = -math.inf
        # statistics
        self.acquired = 0
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.rate_limited = 0
        self.corrections = 0
        self.stale_headers = 0
        self.reserved = 0
        self.refunded = 0
        self.extra_charged = 0
        self.provider_limits: dict[str, int] = {}

    # -- admission -------------------------------------------------------------------------

    def delay(self, tokens: int, now: float) -> float:
        """Seconds until ``tokens`` and one request fit; ``0.0`` now; ``inf`` if only a
        concurrency slot is missing (a release, not time, will free it)."""
        d = self.paused_until - now
        if d < 0:
            d = 0.0
        if self.requests is not None:
            d = max(d, self.requests.delay(1, now))
        if self.tokens is not None and tokens:
            d = max(d, self.tokens.delay(tokens, now))
        if d == 0.0 and self.max_concurrency is not None and self.in_flight >= self.max_concurrency:
            return math.inf
        return d

    def admit(self, tokens: int) -> None:
        """Take a request slot, ``tokens`` and a concurrency slot (``delay`` said 0)."""
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)
        self.in_flight += 1
        self.acquired += 1
        self.reserved += tokens

    def undo(self, tokens: int) -> None:
        """Give back an admission that was never used (cancelled before it was entered)."""
        now = self.clock()
        if self.requests is not None:
            self.requests.give_back(1, now)
        if self.tokens is not None:
            self.tokens.give_back(tokens, now)
        self.in_flight -= 1
        self.acquired -= 1
        self.reserved -= tokens
        self.wake()

    def release(self, reserved: int, used: int | None) -> None:
        """End of a permit: free its concurrency slot and settle its tokens."""
        self.in_flight -= 1
        if used is not None and used != reserved:
            now = self.clock()
            if used < reserved:
                self.refunded += reserved - used
                if self.tokens is not None:
                    self.tokens.give_back(reserved - used, now)
            else:
                self.extra_charged += used - reserved
                if self.tokens is not None:
                    self.tokens.leak(now)
                    self.tokens.take(used - reserved)
        if self.waiting and not self.wake_scheduled:
            # At the loop's next step: see the module docstring (feedback comes after exit).
            self.wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_wake)

    def enqueue(self, waiter: Waiter) -> None:
        """Join the queue; the first live waiter arms the wake-up itself."""
        self.queue.append(waiter)
        self.waiting += 1
        if self.waiting == 1:
            self.wake()

    def withdraw(self, waiter: Waiter) -> None:
        """A waiter was cancelled before admission: it takes nothing and unblocks the rest."""
        waiter.fut.cancel()
        self.waiting -= 1
        if self.queue and self.queue[0] is waiter:
            self.wake()

    def _scheduled_wake(self) -> None:
        self.wake_scheduled = False
        self.wake()

    def wake(self) -> None:
        """Admit waiters from the head while they fit, then arm one timer for the next."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        q = self.queue
        if not q:
            return
        now = self.clock()
        while q:
            w = q[0]
            if w.fut.done():  # cancelled while waiting
                q.popleft()
                continue
            d = self.delay(w.tokens, now)
            if d:
                if d != math.inf:
                    self.timer = w.fut.get_loop().call_later(d, self.wake)
                return
            q.popleft()
            self.waiting -= 1
            self.admit(w.tokens)
            waited = now - w.since
            self.wait_total += waited
            if waited > self.wait_max:
                self.wait_max = waited
            w.fut.set_result(now)

    # -- provider feedback -----------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """A 429: nobody starts before ``seconds`` from now, and the buckets count as full.

        Full buckets make the limiter resume at the sustained rate after the pause instead
        of releasing everyone who queued up during it at once (which would earn another 429).
        """
        self.rate_limited += 1
        now = self.clock()
        until = now + max(0.0, seconds)
        if until > self.paused_until:
            self.paused_until = until
        for b in (self.requests, self.tokens):
            if b is not None:
                b.fill(now)
        if self.waiting:
            self.wake()

    def observe(self, info: RateLimitInfo, age: float) -> None:
        """Lower the room left to what the provider's headers say (see ``RateLimiter``)."""
        for key in ("limit_requests", "limit_tokens"):
            v = getattr(info, key)
            if v is not None:
                self.provider_limits[key] = v
        now = self.clock()
        age = max(0.0, age)
        seen_at = now - age
        if age > self.config.period or seen_at < self.last_header_at:
            self.stale_headers += 1
            return
        self.last_header_at = seen_at
        for bucket, remaining in (
            (self.requests, info.remaining_requests),
            (self.tokens, info.remaining_tokens),
        ):
            # What the provider had left then, plus what it has refilled since.
            if (
                bucket is not None
                and remaining is not None
                and bucket.lower_room(remaining + bucket.rate * age, now)
            ):
                self.corrections += 1

    def statistics(self) -> dict[str, Any]:
        """This lane's counters and levels."""
        now = self.clock()
        if self.requests is not None:
            self.requests.leak(now)
        if self.tokens is not None:
            self.tokens.leak(now)
        return {
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "acquired": self.acquired,
            "wait_time_total": self.wait_total,
            "wait_time_avg": self.wait_total / self.acquired if self.acquired else 0.0,
            "wait_time_max": self.wait_max,
            "requests_level": None if self.requests is None else self.requests.level,
            "requests_capacity": None if self.requests is None else self.requests.capacity,
            "tokens_level": None if self.tokens is None else self.tokens.level,
            "tokens_capacity": None if self.tokens is None else self.tokens.capacity,
            "tokens_reserved": self.reserved,
            "tokens_refunded": self.refunded,
            "tokens_extra_charged": self.extra_charged,
            "rate_limited": self.rate_limited,
            "paused_until": self.paused_until if self.paused_until > now else None,
            "paused_for": max(0.0, self.paused_until - now),
            "header_corrections": self.corrections,
            "stale_headers_ignored": self.stale_headers,
            "provider_limits": dict(self.provider_limits),
        }
