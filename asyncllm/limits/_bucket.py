"""A leaky bucket that can give capacity back: one dimension of a rate limit.

Why not ``aiolimiter``? Its ``AsyncLimiter`` is the model for this bucket (a level that
drains continuously at ``limit / period``; an acquisition fits while ``level + amount <=
capacity``), but it cannot serve this package:

- it has no way to give capacity back, and token reservations are estimates that must be
  reconciled with the real usage after the call (refund the surplus, charge the shortfall);
- its waiters sit in a heap ordered by *amount*, so a stream of small acquisitions overtakes
  a large one forever (a big token reservation starves);
- it limits one dimension, and a request needs a request slot, token budget and a
  concurrency slot *together*, decided by one queue.

So the bucket here is pure bookkeeping with no waiting of its own: time is passed in, and
the limiter (``_limiter.py``) owns the single FIFO queue that decides who goes next across
all dimensions. ``aiolimiter`` is not used by asyncllm.
"""

from __future__ import annotations

__all__ = ["LeakyBucket"]

# Slack for float rounding: without it a waiter woken exactly on time could find the level
# 1e-12 too high and re-arm a timer for a few picoseconds, over and over.
_EPS = 1e-9


class LeakyBucket:
    """One rate dimension (requests or tokens) as a leaky bucket.

    ``level`` is what has been spent and not yet drained; it drains at ``rate`` per second.
    An amount fits when ``level + amount <= capacity``. An amount larger than the whole
    capacity fits once the bucket is empty and takes the level above capacity (a debt that
    later callers wait out), so an oversized reservation is slow, never stuck.

    Args:
        capacity: Largest level, i.e. the burst that may be spent at once.
        rate: Drain per second (the sustained rate).
        now: Current clock reading.
    """

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        if capacity <= 0 or rate <= 0:
            raise ValueError("capacity and rate must be positive")
        self.capacity = capacity
        self.rate = rate
        self.level = 0.0
        self.updated = now

    def leak(self, now: float) -> None:
        """Drain the level for the time elapsed since the last update."""
        # A clock that steps back (a test resetting loop time) drains nothing rather than
        # refilling the bucket.
        elapsed = now - self.updated
        if elapsed > 0:
            if self.level > 0:
                self.level = max(0.0, self.level - elapsed * self.rate)
            self.updated = now

    def delay(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits (0.0 when it fits now)."""
        self.leak(now)
        excess = self.level if amount > self.capacity else self.level + amount - self.capacity
        if excess <= _EPS * max(1.0, self.capacity):
            return 0.0
        return excess / self.rate

    def take(self, amount: float) -> None:
        """Spend ``amount`` (call :meth:`delay` first; this does not check)."""
        self.level += amount

    def give_back(self, amount: float, now: float) -> None:
        """Return ``amount`` that was spent but not used (the level never goes below 0)."""
        self.leak(now)
        self.level = max(0.0, self.level - amount)

    def fill(self, now: float) -> None:
        """Mark the bucket full: nothing more fits until it drains."""
        self.leak(now)
        self.level = max(self.level, self.capacity)

    def lower_room(self, remaining: float, now: float) -> bool:
        """Make sure at most ``remaining`` fits now; returns whether the level was raised."""
        self.leak(now)
        floor = self.capacity - max(0.0, remaining)
        if floor > self.level + _EPS * max(1.0, self.capacity):
            self.level = floor
            return True
        return False

    def __repr__(self) -> str:
        return f"LeakyBucket(level={self.level:.3f}, capacity={self.capacity}, rate={self.rate})"
