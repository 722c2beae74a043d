"""This process's side of one shared budget key: local FIFO, pending updates, statistics.

Only the waiter at the head of the local queue talks to Redis; the others wait for their
turn. A head whose admission starts in the future hands the head on at once (up to
``lookahead`` admissions of this process waiting for their start), so this process keeps
asking while earlier admissions sleep, and every process holds the same few places in the
shared schedule: shares are equal between processes that all have work.

Releases (refunds, dropped leases, withdrawn admissions) and provider feedback (a pause,
header-reported room) are recorded here synchronously, in the task that releases, and
travel to Redis with the next script call of this process: the head's next attempt when
someone is asking (so a release costs no round trip of its own), else a short-lived
flusher task's. A batch whose call failed keeps its id and is sent again as it is: the
script applies a batch id once, so a command a frozen server runs late is never applied
twice.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import deque
from typing import Any

import anyio

__all__ = ["Pending", "RedisLane"]


class Pending:
    """Updates not yet sent to Redis (one batch, taken by one script call)."""

    __slots__ = ("delta", "id", "items", "pause_until", "rooms")

    def __init__(self) -> None:
        self.id = ""  # given when first sent; kept when resent
        self.delta = 0  # token level adjustment: refunds (< 0) and extra usage (> 0)
        self.items: list[str] = []  # "d<lease>" drop a lease, "u<lease> <tokens>" withdraw
        self.pause_until = -math.inf  # local monotonic deadline of a pending pause
        self.rooms: dict[str, tuple[float, float]] = {}  # dimension -> (room, local time)

    def __bool__(self) -> bool:
        return bool(self.delta or self.items or self.rooms or self.pause_until > -math.inf)

    def seal(self) -> str:
        """The batch's id (made on first use, so a resend carries the same one)."""
        if not self.id:
            self.id = uuid.uuid4().hex
        return self.id


class RedisLane:
    """Local queue, pending updates and statistics of one shared key."""

    __slots__ = (
        "acquired",
        "ahead",
        "ahead_freed",
        "calls",
        "fail_open",
        "flusher",
        "full_until",
        "head_busy",
        "in_flight",
        "keys",
        "kick",
        "last_header_at",
        "offset",
        "pending",
        "queue",
        "rate_limited",
        "reply",
        "retries",
        "wait_max",
        "wait_total",
    )

    def __init__(self, keys: tuple[str, str, str, str]) -> None:
        self.keys = keys
        self.queue: deque[asyncio.Future[None]] = deque()
        self.head_busy = False
        self.kick: anyio.Event | None = None  # set while the head sleeps on concurrency
        self.ahead = 0  # admissions of this process granted, waiting for their start
        self.ahead_freed: anyio.Event | None = None
        self.full_until = -math.inf  # monotonic: no start free before, as last refused
        self.offset = math.inf  # our monotonic clock minus the server's (least delayed)
        self.pending = Pending()
        self.retries: deque[Pending] = deque()  # batches whose call failed, oldest first
        self.flusher: asyncio.Task[None] | None = None
        self.in_flight = 0
        self.last_header_at = -math.inf
        self.acquired = 0
        self.fail_open = 0
        self.calls = 0
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.rate_limited = 0
        self.reply: dict[str, Any] = {}

    def unsent(self) -> bool:
        """Whether anything recorded here has not reached Redis yet."""
        return bool(self.pending) or bool(self.retries)

    def take_batch(self) -> Pending:
        """The batch for the call about to be made: a failed one first, else what is new."""
        if self.retries:
            return self.retries.popleft()
        batch, self.pending = self.pending, Pending()
        return batch

    def give_back(self, batch: Pending) -> None:
        """A call failed: its batch goes out again, first, with the same id."""
        if batch:
            self.retries.appendleft(batch)

    def wake_head(self) -> None:
        """Make a head sleeping on concurrency call Redis now (to send updates or retry)."""
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

    def freed_ahead(self) -> None:
        self.ahead -= 1
        if self.ahead_freed is not None:
            self.ahead_freed.set()

    def record(self, wait: float) -> None:
        self.acquired += 1
        self.wait_total += wait
        self.wait_max = max(self.wait_max, wait)

    def statistics(self) -> dict[str, Any]:
        return {
            "waiting": sum(1 for f in self.queue if not f.done()) + int(self.head_busy),
            "in_flight": self.in_flight,
            "acquired": self.acquired,
            "fail_open": self.fail_open,
            "redis_calls": self.calls,
            "scheduled_ahead": self.ahead,
            "unsent_updates": self.unsent(),
            "wait_time_total": self.wait_total,
            "wait_time_avg": self.wait_total / self.acquired if self.acquired else 0.0,
            "wait_time_max": self.wait_max,
            "rate_limited": self.rate_limited,
            **self.reply,
        }
