"""What a budget limits: :class:`SpendLimit` specs, their periods, and alerts.

Money is counted in integer nano-dollars (1e-9 USD) inside budgets, in memory and in Redis
alike, so sums never drift and "spent never exceeds the limit" is an exact comparison.
Reservations round up, settled costs round to nearest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from .._types import ChatRequest

__all__ = ["AlertKind", "BucketRef", "BudgetAlert", "Period", "SpendLimit", "over_limit"]

#: ``"day"`` and ``"month"`` are calendar periods in UTC; a number is a rolling window of
#: that many seconds.
Period: TypeAlias = 'Literal["day", "month"] | float'

AlertKind: TypeAlias = Literal["threshold", "refused"]

NANO = 1_000_000_000


def to_nano_up(usd: float) -> int:
    """USD to nano-dollars, rounded up (for reservations: never under-reserve)."""
    return math.ceil(usd * NANO - 1e-6)


def to_nano(usd: float) -> int:
    """USD to nano-dollars, rounded to nearest (for real costs)."""
    return round(usd * NANO)


@dataclass(slots=True, frozen=True)
class SpendLimit:
    """One spending limit.

    Attributes:
        usd: The most that may be spent in a period, in USD.
        period: ``"day"`` or ``"month"`` (calendar, UTC) or a rolling window in seconds.
        per_tag: Keep a separate limit of ``usd`` for every value of this request tag
            (``ChatRequest.tags``), for example ``"tenant"``. Requests without the tag are
            not counted by this limit.
        tags: Only count requests carrying all of these tags, for example
            ``{"feature": "search"}``.
        provider: Only count attempts on this provider (its name or its kind); ``None``
            counts every provider.
        name: A name for statistics and alerts (default: made from the fields).
    """

    usd: float
    period: Period = "day"
    per_tag: str | None = None
    tags: Mapping[str, str] | None = None
    provider: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.usd, bool) or not isinstance(self.usd, (int, float)):
            raise ConfigurationError(f"SpendLimit.usd must be a number, got {self.usd!r}")
        if not math.isfinite(self.usd) or self.usd < 0:
            raise ConfigurationError(f"SpendLimit.usd must be >= 0, got {self.usd!r}")
        p = self.period
        if isinstance(p, str):
            if p not in ("day", "month"):
                raise ConfigurationError(
                    f"SpendLimit.period must be 'day', 'month' or seconds, got {p!r}"
                )
        elif isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
            raise ConfigurationError(f"SpendLimit.period seconds must be > 0, got {p!r}")
        if self.name is None:
            object.__setattr__(self, "name", self._default_name())

    def _default_name(self) -> str:
        period = self.period if isinstance(self.period, str) else f"{self.period:g}s"
        parts = [f"{period}"]
        if self.provider:
            parts.append(f"provider={self.provider}")
        for k, v in sorted((self.tags or {}).items()):
            parts.append(f"{k}={v}")
        if self.per_tag:
            parts.append(f"per:{self.per_tag}")
        return "/".join(parts)

    @property
    def rolling(self) -> float | None:
        """The rolling window in seconds, or ``None`` for a calendar period."""
        return None if isinstance(self.period, str) else float(self.period)

    def bucket(self, request: ChatRequest, provider: str, kind: str) -> str | None:
        """The bucket ``request`` counts against on ``provider``, or ``None`` (not counted)."""
        if self.provider is not None and self.provider not in (provider, kind):
            return None
        tags = request.tags
        if self.tags and (not tags or any(tags.get(k) != v for k, v in self.tags.items())):
            return None
        if self.per_tag is not None:
            value = tags.get(self.per_tag) if tags else None
            if value is None:
                return None
            return f"{self.name}[{value}]"
        return str(self.name)


def over_limit(spent: int, reserved: int, amount: int, limit: int) -> bool:
    """Whether an attempt of worst case ``amount`` must be refused (nano-USD).

    It must fit next to what is spent and reserved; and once spending has reached the
    limit nothing more runs, a free or unpriced attempt included (a ``$0`` limit still lets
    free attempts through: nothing has been spent).
    """
    return spent + reserved + amount > limit or (spent > 0 and spent >= limit)


class BucketRef(Protocol):
    """What an alert names of a bucket (a memory bucket or a Redis target)."""

    limit: SpendLimit
    key: str
    period_start: float


def period_bounds(period: Period, now: float) -> tuple[str, float, float]:
    """The period containing ``now``: ``(id, start, end)`` in epoch seconds.

    A rolling window has the fixed id ``"rolling"``, starts ``period`` seconds ago and has
    no end (``math.inf``).
    """
    if not isinstance(period, str):
        return "rolling", now - float(period), math.inf
    t = datetime.fromtimestamp(now, tz=UTC)
    if period == "day":
        start = datetime(t.year, t.month, t.day, tzinfo=UTC)
        end_ts = start.timestamp() + 86_400
        return start.strftime("%Y-%m-%d"), start.timestamp(), end_ts
    start = datetime(t.year, t.month, 1, tzinfo=UTC)
    nxt = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)
    return start.strftime("%Y-%m"), start.timestamp(), nxt.timestamp()


@dataclass(slots=True, frozen=True)
class BudgetAlert:
    """A budget event for the ``on_alert`` callback (also logged to ``asyncllm.budget``).

    Attributes:
        kind: ``"threshold"``: spending reached ``threshold`` × the limit;
            ``"refused"``: the first request of the period was refused (in a rolling
            window: the first since some spending last aged out of it).
        budget: The budget's name.
        limit: The limit's name.
        bucket: The bucket (the limit's name, with the tag value for per-tag limits).
        threshold: The fraction of the limit that was reached (``None`` for refusals).
        spent_usd: Spent in the period when the alert fired.
        limit_usd: The limit.
        period_start: Start of the period, epoch seconds.
    """

    kind: AlertKind
    budget: str
    limit: str
    bucket: str
    threshold: float | None
    spent_usd: float
    limit_usd: float
    period_start: float
