"""A small breaker for a shared store (Redis) that is down or frozen.

After a failure the store is left alone for a cool-down that doubles with each failed probe
(:data:`OUTAGE_BASE_COOLDOWN` up to :data:`OUTAGE_MAX_COOLDOWN` seconds); then one caller at
a time probes it. Callers that find it tripped do not wait: a cache bypasses the store (a
miss), a budget applies its ``on_redis_error`` policy at once. So a frozen Redis costs one
bounded call per cool-down, not one per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["OUTAGE_BASE_COOLDOWN", "OUTAGE_MAX_COOLDOWN", "Outage"]

#: Seconds the store is left alone after its first failure.
OUTAGE_BASE_COOLDOWN = 0.5
#: Longest cool-down between probes, seconds.
OUTAGE_MAX_COOLDOWN = 30.0


class Outage:
    """Whether a shared store may be asked now.

    Usage: ``if outage.available(): try: ... outage.ok() except: outage.failed()``; a call
    that ended neither way (cancelled by its caller) calls :meth:`abandon`.

    Args:
        base: First cool-down, seconds.
        cap: Longest cool-down, seconds.
        clock: Monotonic seconds.
    """

    __slots__ = ("_base", "_cap", "_clock", "_cooldown", "_probing", "_retry_at", "trips")

    def __init__(
        self,
        base: float = OUTAGE_BASE_COOLDOWN,
        cap: float = OUTAGE_MAX_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base
        self._cap = cap
        self._clock = clock
        self._cooldown = 0.0  # 0: healthy
        self._retry_at = 0.0
        self._probing = False
        #: Times the store went from healthy to tripped.
        self.trips = 0

    @property
    def tripped(self) -> bool:
        """True while the store is considered down."""
        return self._cooldown > 0

    def available(self) -> bool:
        """True when a call may go to the store now (healthy, or this caller probes)."""
        if not self._cooldown:
            return True
        if self._probing or self._clock() < self._retry_at:
            return False
        self._probing = True
        return True

    def ok(self) -> None:
        """The call succeeded: the store is healthy again."""
        self._cooldown = 0.0
        self._probing = False

    def failed(self) -> None:
        """The call failed or timed out: trip (or stay tripped, with a longer cool-down)."""
        if not self._cooldown:
            self.trips += 1
            self._cooldown = self._base
        elif self._probing:
            self._cooldown = min(self._cap, self._cooldown * 2)
        self._probing = False
        self._retry_at = self._clock() + self._cooldown

    def abandon(self) -> None:
        """The call was cancelled before it told anything: let the next caller probe."""
        self._probing = False

    def statistics(self) -> dict[str, Any]:
        """``tripped``, ``trips`` and the current cool-down."""
        return {"tripped": self.tripped, "trips": self.trips, "cooldown": self._cooldown}
