"""Spending budgets enforced before each attempt: the in-process :class:`MemoryBudget`.

Every attempt (primary, retry, hedge, fallback, race) reserves its worst-case cost at the
price of the provider it runs on, in every bucket it counts against, before it is sent. The
check and the reservation happen together with no ``await`` between them, so no number of
concurrent tasks can overcommit a bucket: ``spent + reserved + worst case <= limit`` holds
at every reservation. Leaving the reservation's context settles it to the real cost (or
keeps the worst case when the cost is unknown, e.g. a cancelled stream).

A settled cost above the worst case (a response longer than the assumed output cap when the
request had no ``max_tokens``) is still recorded, so ``spent`` can then pass the limit;
set ``max_tokens`` for a hard guarantee. Once ``spent`` has reached a limit, every attempt
counted by it is refused, whatever its price (a free or unpriced one included).

Money is never silently off: an unpriced model under a budget is a ConfigurationError
naming provider and model (when the client is built, or at its first request) unless it is
priced (``0`` included) or the budget says ``unknown_price="allow"``/``"refuse"``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._exceptions import BudgetExceeded, ConfigurationError
from .._logging import get_logger
from .._types import ChatRequest as _ChatRequest
from .._types import Message
from ._limit import (
    NANO,
    AlertKind,
    BucketRef,
    BudgetAlert,
    SpendLimit,
    over_limit,
    period_bounds,
    to_nano,
    to_nano_up,
)
from ._prices import Prices, worst_case

if TYPE_CHECKING:
    from .._hooks import Pricing
    from .._types import ChatRequest

__all__ = ["MemoryBudget", "UnknownPrice"]

#: What a budget does with a model it has no price for: ``"error"`` (default) raises
#: :class:`~asyncllm.ConfigurationError` naming the provider and model; ``"refuse"`` refuses
#: each such attempt with :class:`~asyncllm.BudgetExceeded`; ``"allow"`` lets it run
#: without reserving (an explicit choice to leave that model's spending uncounted).
UnknownPrice: TypeAlias = Literal["error", "refuse", "allow"]

_log = get_logger("asyncllm.budget")

# What a construction-time price check prices: a one-message request (only "is there a
# price" matters, not the amount).
_PROBE_REQUEST = _ChatRequest(messages=(Message("user", "?"),), max_tokens=1)


def _same_prices(a: Pricing, b: Pricing) -> bool:
    """Two :class:`Prices` built alike (same overrides and provider ids) price alike."""
    if type(a) is not Prices or type(b) is not Prices:
        return False
    return all(
        getattr(a, k) == getattr(b, k) for k in ("_overrides", "_provider_ids", "_use_updated")
    )


class BudgetBase:
    """What every budget shares: limits, worst-case pricing, alerts.

    Args:
        *limits: :class:`SpendLimit` specs, or plain numbers (USD per UTC day).
        pricing: Prices attempts' worst cases. Default: the client's ``pricing=`` (the
            client hands it over when the budget is given to it), else a new
            :class:`Prices`. Giving the budget and the client two different pricing objects
            is a :class:`~asyncllm.ConfigurationError`.
        name: The budget's name in errors, statistics and alerts.
        thresholds: Fractions of a limit at which to alert, each once per period.
        on_alert: Called synchronously with a :class:`BudgetAlert`; exceptions it raises
            are logged and swallowed.
        default_max_tokens: Output tokens assumed for requests without ``max_tokens``
            (default: :data:`~asyncllm.DEFAULT_OUTPUT_CAP`, as the limiter and the wire).
        unknown_price: What to do when the model's price is unknown (:data:`UnknownPrice`):
            ``"error"`` (default), ``"refuse"`` or ``"allow"``.
        clock: Wall clock in epoch seconds (calendar periods are UTC days and months).
    """

    def __init__(
        self,
        *limits: SpendLimit | float,
        pricing: Pricing | None = None,
        name: str = "budget",
        thresholds: Sequence[float] = (0.8, 1.0),
        on_alert: Callable[[BudgetAlert], object] | None = None,
        default_max_tokens: int | None = None,
        unknown_price: UnknownPrice = "error",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not limits:
            raise ConfigurationError("a budget needs at least one limit")
        self.limits: tuple[SpendLimit, ...] = tuple(
            lim if isinstance(lim, SpendLimit) else SpendLimit(lim) for lim in limits
        )
        names = [lim.name for lim in self.limits]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"limit names must be unique, got {names}")
        if any(not t > 0 for t in thresholds):
            raise ConfigurationError(f"thresholds must be > 0, got {list(thresholds)}")
        if unknown_price not in ("error", "refuse", "allow"):
            raise ConfigurationError(
                f"unknown_price must be 'error', 'refuse' or 'allow', got {unknown_price!r}"
            )
        self.name = name
        self._own_pricing = pricing is not None
        self._pricing: Pricing = pricing if pricing is not None else Prices()
        self._thresholds = tuple(sorted(set(thresholds)))
        self._on_alert = on_alert
        self._default_max_tokens = default_max_tokens
        self._unknown_price = unknown_price
        self._clock = clock

    @property
    def pricing(self) -> Pricing:
        """The prices worst cases are reserved at."""
        return self._pricing

    def bind(self, pricing: Pricing, routes: Sequence[tuple[str, str, str | None, bool]]) -> None:
        """Adopt the client's prices and check its providers' default models are priced
        (called by :class:`~asyncllm.Client` when it is built with this budget).

        Args:
            pricing: The client's pricing (adopted unless the budget was given its own).
            routes: ``(provider name, kind, default model or None, local)`` per provider.

        Raises:
            ConfigurationError: Other prices than the client's, or an unpriced default
                model while ``unknown_price`` is ``"error"``.
        """
        if pricing is not self._pricing:
            if self._own_pricing and not _same_prices(pricing, self._pricing):
                raise ConfigurationError(
                    f"budget {self.name!r} and the client were given different pricing "
                    "objects; pass the same one to both (or only to the client)"
                )
            self._pricing = pricing
        # Bound: a second client with other prices is a mismatch too.
        self._own_pricing = True
        if self._unknown_price != "error":
            return
        probe = _PROBE_REQUEST
        for provider, kind, model, local in routes:
            if model is None or not any(
                lim.provider in (None, provider, kind) for lim in self.limits
            ):
                continue
            self._check_priced(probe, provider, kind, model, local)

    def _check_priced(
        self, request: ChatRequest, provider: str, kind: str, model: str, local: bool
    ) -> float | None:
        usd = worst_case(
            self._pricing,
            request,
            provider=provider,
            kind=kind,
            model=model,
            local=local,
            default_max_tokens=self._default_max_tokens,
        )
        if usd is None and self._unknown_price == "error":
            raise ConfigurationError(
                f"budget {self.name!r}: no price for model {model!r} on provider "
                f"{provider!r} ({kind}), so its spending could not be counted. Price it "
                f"(Prices(overrides={{({provider!r}, {model!r}): ModelPrice(...)}}), 0 "
                "included) or build the budget with unknown_price='allow' (uncounted) or "
                "'refuse'"
            )
        return usd

    def _worst_nano(
        self, request: ChatRequest, provider: str, kind: str, model: str, local: bool
    ) -> int:
        usd = self._check_priced(request, provider, kind, model, local)
        if usd is None:
            if self._unknown_price == "refuse":
                raise BudgetExceeded(f"{self.name} (unknown price of {kind}:{model})", math.inf, 0)
            return 0
        return to_nano_up(usd)

    def _targets(
        self, request: ChatRequest, provider: str, kind: str
    ) -> list[tuple[SpendLimit, str]]:
        out = []
        for lim in self.limits:
            key = lim.bucket(request, provider, kind)
            if key is not None:
                out.append((lim, key))
        return out

    def _bucket_alert(
        self, kind: AlertKind, b: BucketRef, threshold: float | None, spent_nano: int
    ) -> None:
        """Raise the ``kind`` alert of bucket ``b`` (see :meth:`_alert`)."""
        self._alert(
            BudgetAlert(
                kind=kind,
                budget=self.name,
                limit=str(b.limit.name),
                bucket=b.key,
                threshold=threshold,
                spent_usd=spent_nano / NANO,
                limit_usd=b.limit.usd,
                period_start=b.period_start,
            )
        )

    def _alert(self, alert: BudgetAlert) -> None:
        _log.warning(
            "budget.refused" if alert.kind == "refused" else "budget.threshold",
            budget=alert.budget,
            limit=alert.limit,
            bucket=alert.bucket,
            threshold=alert.threshold,
            spent_usd=round(alert.spent_usd, 9),
            limit_usd=alert.limit_usd,
            period_start=alert.period_start,
        )
        if self._on_alert is not None:
            try:
                self._on_alert(alert)
            except Exception:
                _log.exception("budget.alert_callback_failed", budget=self.name)


class _Bucket:
    """One limit's state for one tag value (or the whole limit)."""

    __slots__ = (
        "fired",
        "key",
        "limit",
        "limit_nano",
        "period_end",
        "period_id",
        "period_start",
        "refusals",
        "refused_alerted",
        "reservations",
        "reserved",
        "rolling",
        "spent",
        "window",
    )

    def __init__(self, limit: SpendLimit, key: str, now: float) -> None:
        self.limit = limit
        self.key = key
        self.limit_nano = round(limit.usd * NANO)
        self.spent = 0
        self.reserved = 0
        self.refusals = 0
        self.reservations = 0
        self.fired: set[float] = set()
        self.refused_alerted = False
        self.rolling = limit.rolling or 0.0
        self.window: deque[tuple[float, int]] | None = (
            deque() if limit.rolling is not None else None
        )
        self.period_id, self.period_start, self.period_end = period_bounds(limit.period, now)

    def roll(self, now: float) -> None:
        """Bring the bucket to the period containing ``now``."""
        window = self.window
        if window is not None:
            horizon = now - self.rolling
            evicted = False
            while window and window[0][0] <= horizon:
                self.spent -= window.popleft()[1]
                evicted = True
            self.period_start = horizon
            if evicted:
                # A rolling window re-arms a threshold once spending falls back below it,
                # and the refusal alert once some spending has aged out.
                self.refused_alerted = False
                if self.fired:
                    self.fired = {t for t in self.fired if self.spent >= t * self.limit_nano}
        elif not self.period_start <= now < self.period_end:
            self.period_id, self.period_start, self.period_end = period_bounds(
                self.limit.period, now
            )
            # In-flight reservations carry over; they settle into the new period.
            self.spent = 0
            self.fired = set()
            self.refused_alerted = False

    def stats(self) -> dict[str, Any]:
        return {
            "limit": self.limit.name,
            "period": self.period_id,
            "period_start": self.period_start,
            "limit_usd": self.limit.usd,
            "spent_usd": self.spent / NANO,
            "reserved_usd": self.reserved / NANO,
            "remaining_usd": max(0, self.limit_nano - self.spent - self.reserved) / NANO,
            "reservations": self.reservations,
            "refusals": self.refusals,
        }


class ReservationBase:
    """What every budget's reservation shares: the attempt, its worst case, its real cost.

    Args:
        args: The attempt: ``(request, provider, kind, model, local)``.
    """

    __slots__ = ("_amount", "_args", "_cost", "_settled")

    def __init__(self, args: tuple[ChatRequest, str, str, str, bool]) -> None:
        self._args = args
        self._amount = 0
        self._cost: float | None = None
        self._settled = False

    @property
    def amount_usd(self) -> float:
        """The worst-case cost reserved, USD."""
        return self._amount / NANO

    def settle(self, cost_usd: float | None) -> None:
        """Record the real cost (``None``: unknown, keep the worst case)."""
        self._cost = cost_usd
        self._settled = cost_usd is not None

    def _booked_nano(self) -> int:
        """What to book as spent: the settled cost, else the worst case reserved."""
        return to_nano(self._cost) if self._settled and self._cost is not None else self._amount


class _MemoryReservation(ReservationBase):
    """The context manager :meth:`MemoryBudget.reserve` returns."""

    #: ``__aexit__`` never suspends (the orchestrator needs no shield scope to release it).
    sync_exit = True

    __slots__ = ("_buckets", "_budget")

    def __init__(self, budget: MemoryBudget, args: tuple[ChatRequest, str, str, str, bool]):
        super().__init__(args)
        self._budget = budget
        self._buckets: list[_Bucket] = []

    async def __aenter__(self) -> _MemoryReservation:
        # No await: the check and the reservation are one atomic step on the event loop.
        self._budget._take(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Synchronous, so cancellation cannot interrupt it.
        self._budget._give_back(self)


class MemoryBudget(BudgetBase):
    """A budget kept in this process (see :class:`BudgetBase` for the arguments).

    Implements :class:`~asyncllm._hooks.Budget`::

        budget = MemoryBudget(
            SpendLimit(50.0, period="day"),
            SpendLimit(2.0, period="day", per_tag="tenant"),
            SpendLimit(500.0, period="month", provider="openai"),
            on_alert=lambda a: print(a),
        )
        client = Client(..., budget=budget)
    """

    def __init__(self, *limits: SpendLimit | float, **kwargs: Any) -> None:
        super().__init__(*limits, **kwargs)
        now = self._clock()
        self._buckets: dict[str, _Bucket] = {
            str(lim.name): _Bucket(lim, str(lim.name), now)
            for lim in self.limits
            if lim.per_tag is None
        }

    def reserve(
        self, request: ChatRequest, *, provider: str, kind: str, model: str, local: bool
    ) -> _MemoryReservation:
        """Reserve the attempt's worst-case cost, or raise ``BudgetExceeded`` on entry."""
        return _MemoryReservation(self, (request, provider, kind, model, local))

    def _take(self, r: _MemoryReservation) -> None:
        request, provider, kind, model, local = r._args
        targets = self._targets(request, provider, kind)
        if not targets:
            return
        amount = self._worst_nano(request, provider, kind, model, local)
        now = self._clock()
        buckets = []
        for lim, key in targets:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(lim, key, now)
            b.roll(now)
            if over_limit(b.spent, b.reserved, amount, b.limit_nano):
                b.refusals += 1
                if not b.refused_alerted:
                    b.refused_alerted = True
                    self._bucket_alert("refused", b, None, b.spent)
                remaining = max(0, b.limit_nano - b.spent - b.reserved) / NANO
                raise BudgetExceeded(f"{self.name}:{key}", amount / NANO, remaining)
            buckets.append(b)
        for b in buckets:
            b.reserved += amount
            b.reservations += 1
        r._buckets = buckets
        r._amount = amount

    def _give_back(self, r: _MemoryReservation) -> None:
        buckets, r._buckets = r._buckets, []
        if not buckets:
            return
        cost = r._booked_nano()
        now = self._clock()
        for b in buckets:
            b.reserved -= r._amount
            b.roll(now)
            b.spent += cost
            if b.window is not None and cost:
                b.window.append((now, cost))
            if self._thresholds and b.limit_nano:
                self._check_thresholds(b)

    def _check_thresholds(self, b: _Bucket) -> None:
        for t in self._thresholds:
            reached = b.spent >= t * b.limit_nano
            if reached and t not in b.fired:
                b.fired.add(t)
                self._bucket_alert("threshold", b, t, b.spent)

    def statistics(self) -> dict[str, Any]:
        """Per bucket: spent, reserved, remaining, refusals, reservations, period start."""
        now = self._clock()
        buckets = {}
        for key, b in self._buckets.items():
            b.roll(now)
            buckets[key] = b.stats()
        return {
            "name": self.name,
            "refusals": sum(b.refusals for b in self._buckets.values()),
            "buckets": buckets,
        }
