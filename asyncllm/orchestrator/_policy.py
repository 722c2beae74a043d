"""Strategy and policy values: what the orchestrator does, as small frozen dataclasses.

A client is configured once with a strategy (``Fallback()``, ``Race(n=2)``, ``Hedge(...)``), a
:class:`RetryPolicy` and a :class:`BreakerPolicy`; a call may override the strategy. Every
value here is immutable and validated on construction, so a bad setting fails at
``Client(...)``, not in the middle of a request.
"""

from __future__ import annotations

import functools
import random
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

from .._exceptions import ConfigurationError

_T = TypeVar("_T")

__all__ = [
    "BreakerPolicy",
    "Fallback",
    "Hedge",
    "Race",
    "RetryPolicy",
    "Strategy",
    "StrategyLike",
    "coerce_strategy",
]


def _deprecated(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(
        f"{old} is deprecated, use {new}: retry and hedge tokens are an allowance; "
        f"'budget' in asyncllm means spend only",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def _renamed(cls: type[_T], renames: dict[str, str]) -> type[_T]:
    """Accept the old names of ``cls``'s renamed fields, for a release: as keywords of the
    constructor and as read-only attributes, each with a ``DeprecationWarning``. They are
    not fields: ``dataclasses.replace``, equality, ``repr`` and pickling see the new names
    only."""
    init = cls.__init__
    name = cls.__name__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        for old, new in renames.items():
            if old in kwargs:
                if new in kwargs:
                    raise ConfigurationError(f"{name}({old}=..., {new}=...): keep {new}=")
                _deprecated(f"{name}({old}=...)", f"{name}({new}=...)", stacklevel=3)
                kwargs[new] = kwargs.pop(old)
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]
    for old, new in renames.items():

        def read(self: Any, old: str = old, new: str = new) -> Any:
            _deprecated(f"{name}.{old}", f"{name}.{new}", stacklevel=3)
            return getattr(self, new)

        setattr(cls, old, property(read, doc=f"Deprecated name of ``{new}``."))
    return cls


@dataclass(slots=True, frozen=True)
class Fallback:
    """Try providers one at a time in priority order.

    The next provider is tried only after an error that says another provider could
    succeed (rate limited, overloaded, server error, timeout, connection, circuit open).
    Bad requests and authentication failures fail at once.
    """

    name: ClassVar[str] = "fallback"


@dataclass(slots=True, frozen=True)
class Race:
    """Start on several providers at once; the first success wins, the rest are cancelled.

    Attributes:
        n: How many providers to race (the first ``n`` in priority order); ``None`` races
            them all. Providers beyond ``n`` are fallbacks for failed racers.
    """

    n: int | None = None
    name: ClassVar[str] = "race"

    def __post_init__(self) -> None:
        if self.n is not None and self.n < 1:
            raise ConfigurationError("Race(n=...) must be at least 1")


@dataclass(slots=True, frozen=True)
class Hedge:
    """Hedged requests ("The Tail at Scale", Dean & Barroso 2013), with staggered backups.

    Start on the first provider; when no answer (for streams: no first token) has come
    after ``delay``, start a backup on the next provider (the same one again when there is
    only one). If the backup has not answered either after ``stagger``, start another, up
    to ``max_attempts`` legs in all. The first success wins and the others are cancelled.
    Every backup spends a token of the hedge allowance (``allowance``), and only one whose
    request was actually sent keeps it spent.

    Why more than one backup: with one, a request whose primary *and* backup are both slow
    has nothing else to try, and that is what sets p99.9 (see docs/benchmarks.md, "the far
    tail"). A second backup costs only when the first is late too, so it is cheap.

    Attributes:
        delay: Seconds, or ``"adaptive"``: the ``quantile`` of the latency recently observed
            for the primary's provider and model (total latency, or time to first token for
            streams), estimated over a rolling window that accounts for the attempts
            hedging cut short (Kaplan-Meier over censored samples).
        quantile: Quantile used by the adaptive delay. ``None`` (default) derives it from the
            allowance: ``1 - 0.8 * allowance`` (0.96 for 5%), so first backups use about 80%
            of it and later, rarer ones fit in the rest.
        max_attempts: Most legs started by the hedge (primary included): 3 is a primary and
            up to two backups.
        stagger: Seconds between one backup and the next, ``0`` to send the next as soon as
            the previous went out, ``None`` to wait ``delay`` again, or ``"adaptive"``: the
            ``stagger_quantile`` of the latency observed on the backup's provider ("the
            backup would usually have answered by now") once that provider has
            ``4 * min_samples`` latencies (a p90 needs more samples than a p96 delay: the
            backup's window is mostly censored), else the primary's once it has
            ``min_samples``, else the delay.
        stagger_quantile: Quantile used by the adaptive stagger.
        allowance: Backups allowed as a fraction of primary requests (a token bucket:
            the hedge *allowance*; "budget" in asyncllm means spend only).
        burst: Backups the allowance lets through in a burst (the bucket's capacity).
        initial_delay: Adaptive delay used until ``min_samples`` latencies are known.
        min_samples: Latency samples needed before the adaptive delay is trusted (a p95
            of fewer than ~50 samples is mostly noise).
        min_delay: Floor of the adaptive delay and stagger, so a very fast provider is not
            hedged on noise.
        budget: Deprecated name of ``allowance`` (a ``DeprecationWarning``).
    """

    delay: float | Literal["adaptive"] = "adaptive"
    quantile: float | None = None
    max_attempts: int = 3
    stagger: float | Literal["adaptive"] | None = "adaptive"
    stagger_quantile: float = 0.9
    allowance: float = 0.05
    burst: float = 10.0
    initial_delay: float = 1.0
    min_samples: int = 50
    min_delay: float = 0.0
    name: ClassVar[str] = "hedge"

    def __post_init__(self) -> None:
        if self.delay != "adaptive" and (
            isinstance(self.delay, bool)
            or not isinstance(self.delay, (int, float))
            or self.delay < 0
        ):
            raise ConfigurationError("Hedge(delay=...) must be seconds >= 0 or 'adaptive'")
        if self.quantile is not None and not 0.0 < self.quantile < 1.0:
            raise ConfigurationError("Hedge(quantile=...) must be between 0 and 1")
        if not 0.0 < self.stagger_quantile < 1.0:
            raise ConfigurationError("Hedge(stagger_quantile=...) must be between 0 and 1")
        if self.stagger not in (None, "adaptive") and (
            isinstance(self.stagger, bool)
            or not isinstance(self.stagger, (int, float))
            or self.stagger < 0
        ):
            raise ConfigurationError("Hedge(stagger=...) must be seconds >= 0, 'adaptive' or None")
        if self.max_attempts < 1:
            raise ConfigurationError("Hedge(max_attempts=...) must be at least 1")
        if self.allowance < 0 or self.burst < 0:
            raise ConfigurationError("Hedge(allowance=..., burst=...) must be >= 0")
        if self.initial_delay < 0 or self.min_delay < 0 or self.min_samples < 1:
            raise ConfigurationError("Hedge delays must be >= 0 and min_samples >= 1")

    @property
    def adaptive(self) -> bool:
        """True when the delay follows observed latency."""
        return self.delay == "adaptive"

    @property
    def delay_quantile(self) -> float:
        """The quantile the adaptive delay uses (``quantile``, or derived from
        ``allowance``)."""
        if self.quantile is not None:
            return self.quantile
        return min(0.999, max(0.5, 1.0 - 0.8 * self.allowance))


_renamed(Hedge, {"budget": "allowance"})

Strategy: TypeAlias = Fallback | Race | Hedge
StrategyLike: TypeAlias = "Strategy | Literal['fallback', 'race', 'hedge']"

_BY_NAME: dict[str, Strategy] = {"fallback": Fallback(), "race": Race(), "hedge": Hedge()}


def coerce_strategy(value: object) -> Strategy:
    """A strategy object from a strategy or its name.

    Raises:
        ConfigurationError: for anything else.
    """
    if isinstance(value, (Fallback, Race, Hedge)):
        return value
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    raise ConfigurationError(
        f"strategy must be 'fallback', 'race', 'hedge' or a Fallback/Race/Hedge object, "
        f"got {value!r}"
    )


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """Retries, owned by the orchestrator (the SDKs run with ``max_retries=0``).

    One attempt counter per logical request bounds everything: a request makes at most
    ``max_attempts`` attempts (default: one per provider plus ``max_retries``), whatever
    mix of primaries, fallbacks, race legs, hedges and retries that is. Moving to a provider
    not yet tried does not wait; trying a provider again is a *retry*: it waits an
    exponential backoff with full jitter (or the server's Retry-After when longer and it
    fits the deadline) and spends a token of the client's retry *allowance* (a token
    bucket; "budget" in asyncllm means spend only).

    Attributes:
        max_retries: Attempts allowed beyond one per provider.
        max_attempts: Explicit total cap (overrides ``providers + max_retries``).
        base_delay: Backoff of the first retry (before jitter), seconds.
        multiplier: Growth of the backoff per retry of the same provider.
        max_delay: Cap of the backoff, seconds.
        max_retry_after: A Retry-After longer than this is not waited for.
        allowance_ratio: Retry tokens earned per logical request that goes upstream (0.1:
            retries stay under about 10% of requests when everything fails, as the SRE
            book advises).
        allowance_per_second: Retry tokens earned per second whatever the traffic (a
            floor, so a quiet client can still retry).
        allowance_burst: Capacity of the retry allowance.
        rng: Random source of the jitter (inject a seeded ``random.Random`` in tests).
        budget_ratio: Deprecated name of ``allowance_ratio`` (a ``DeprecationWarning``);
            likewise ``budget_per_second`` and ``budget_burst``.
    """

    max_retries: int = 2
    max_attempts: int | None = None
    base_delay: float = 0.25
    multiplier: float = 2.0
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    allowance_ratio: float = 0.1
    allowance_per_second: float = 1.0
    allowance_burst: float = 10.0
    rng: random.Random | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError("RetryPolicy(max_retries=...) must be >= 0")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy(max_attempts=...) must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ConfigurationError("RetryPolicy delays must be >= 0")
        if self.multiplier < 1:
            raise ConfigurationError("RetryPolicy(multiplier=...) must be >= 1")
        if min(self.allowance_ratio, self.allowance_per_second, self.allowance_burst) < 0:
            raise ConfigurationError("RetryPolicy allowance settings must be >= 0")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before the ``retry``-th retry (1-based) of one provider.

        Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): uniform in
        ``[0, min(max_delay, base_delay * multiplier ** (retry - 1))]``, which spreads
        synchronized clients best.
        """
        ceiling = min(self.max_delay, self.base_delay * self.multiplier ** max(0, retry - 1))
        return rng.uniform(0.0, ceiling)


_renamed(
    RetryPolicy,
    {
        "budget_ratio": "allowance_ratio",
        "budget_per_second": "allowance_per_second",
        "budget_burst": "allowance_burst",
    },
)


@dataclass(slots=True, frozen=True)
class BreakerPolicy:
    """Per-provider circuit breaker settings.

    The breaker opens when, over the last ``window`` seconds, at least ``min_volume``
    attempts were seen and the share of failures reached ``failure_rate``. After
    ``cooldown`` seconds it lets ``half_open_probes`` attempts through; a successful probe
    closes it, a failed one opens it again. Rate limiting (429), bad requests and
    authentication errors never count as failures: 429s go to the rate limiter.

    Attributes:
        failure_rate: Failure share that opens the breaker.
        min_volume: Attempts needed in the window before the rate is judged.
        window: Seconds of history.
        buckets: Resolution of the window (it slides bucket by bucket).
        cooldown: Seconds open before probing.
        half_open_probes: Probes allowed at once while half-open.
        rejection_rate: Share of answers rejected by the acceptance predicate (``accept=``)
            that opens the breaker, judged over the same window and ``min_volume``;
            ``None`` (the default): rejections never open it. When set, a rejected
            half-open probe opens the breaker again, as a failed one does.
    """

    failure_rate: float = 0.5
    min_volume: int = 20
    window: float = 30.0
    buckets: int = 10
    cooldown: float = 15.0
    half_open_probes: int = 1
    rejection_rate: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_rate <= 1.0:
            raise ConfigurationError("BreakerPolicy(failure_rate=...) must be in (0, 1]")
        if self.min_volume < 1 or self.buckets < 1 or self.half_open_probes < 1:
            raise ConfigurationError(
                "BreakerPolicy min_volume, buckets, half_open_probes must be >= 1"
            )
        if self.window <= 0 or self.cooldown < 0:
            raise ConfigurationError("BreakerPolicy window must be > 0 and cooldown >= 0")
        if self.rejection_rate is not None and not 0.0 < self.rejection_rate <= 1.0:
            raise ConfigurationError("BreakerPolicy(rejection_rate=...) must be in (0, 1] or None")
