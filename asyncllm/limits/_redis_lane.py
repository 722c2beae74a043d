"""This process's side of one shared budget key: local FIFO, pending updates, statistics.

Only the waiter at the head of the local queue talks to Redis; the others wait for their
turn. Releases (refunds, dropped leases, undone admissions) and provider feedback (a pause,
header-reported room) are recorded here synchronously, in the task that releases, and
travel to Redis with the next script call of this process: the head's next attempt when
someone is waiting (so a release costs no extra round trip), or a call of their own when
nobody is.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

import anyio

__all__ = ["Pending", "RedisLane"]


class Pending:
    """Updates not yet sent to Redis (one batch, taken by one script call)."""

    __slots__ = ("delta", "leases", "pause_until", "rooms", "undo")

    def __init__(self) -> None:
        self.delta = 0  # token level adjustment: refunds (< 0) and extra usage (> 0)
        self.undo = 0  # admissions given back (request slots)
        self.leases: list[str] = []  # concurrency leases to drop
        self.pause_until = -math.inf  # local monotonic deadline of a pending pause
        self.rooms: dict[str, tuple[float, float]] = {}  # dimension -> (room, local time)

    def __bool__(self) -> bool:
        return bool(
            self.delta or self.undo or self.leases or self.rooms or self.pause_until > -math.inf
        )

    def merge(self, other: Pending) -> None:
        """Put a batch back (its call failed), so the next call sends it."""
        self.delta += other.delta
        self.undo += other.undo
        self.leases += other.leases
        self.pause_until = max(self.pause_until, other.pause_until)
        for dim, seen in other.rooms.items():
            self.rooms.setdefault(dim, seen)


class RedisLane:
    """Local queue, pending updates and statistics of one shared key."""

    __slots__ = (
        "acquired",
        "head_busy",
        "in_flight",
        "keys",
        "kick",
        "last_header_at",
        "pending",
        "queue",
        "rate_limited",
        "reply",
        "wait_max",
        "wait_total",
    )

    def __init__(self, keys: tuple[str, str]) -> None:
        self.keys = keys
        self.queue: deque[asyncio.Future[None]] = deque()
        self.head_busy = False
        self.kick: anyio.Event | None = None  # set while the head sleeps
        self.pending = Pending()
        self.in_flight = 0
        self.last_header_at = -math.inf
        self.acquired = 0
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.rate_limited = 0
        self.reply: dict[str, Any] = {}

    def take_pending(self) -> Pending:
        """The batch for the call about to be made."""
        batch, self.pending = self.pending, Pending()
        return batch

    def wake_head(self) -> None:
        """Make a sleeping head call Redis now (to send updates or retry)."""
        if self.kick is not None:
            self.kick.set()

    def join(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
        """Become the head, or get a future that resolves when it is this waiter's turn."""
        if not self.head_busy:
            self.head_busy = True
            return None
        turn: asyncio.Future[None] = loop.create_future()
        self.queue.append(turn)
        return turn

    def pass_on(self) -> None:
        """Hand the head position to the next live waiter."""
        self.head_busy = False
        while self.queue:
            fut = self.queue.popleft()
            if not fut.done():
                self.head_busy = True
                fut.set_result(None)
                return

    def record(self, wait: float) -> None:
        self.acquired += 1
        self.wait_total += wait
        self.wait_max = max(self.wait_max, wait)

    def statistics(self) -> dict[str, Any]:
        return {
            "waiting": sum(1 for f in self.queue if not f.done()) + int(self.head_busy),
            "in_flight": self.in_flight,
            "acquired": self.acquired,
            "wait_time_total": self.wait_total,
            "wait_time_avg": self.wait_total / self.acquired if self.acquired else 0.0,
            "wait_time_max": self.wait_max,
            "rate_limited": self.rate_limited,
            **self.reply,
        }
