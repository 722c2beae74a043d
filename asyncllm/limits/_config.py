"""Rate-limit configuration: one ``RateLimit`` per provider (a plain value, loadable from TOML)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .._exceptions import ConfigurationError
from .._redis_client import check_error_policy

__all__ = ["RateLimit"]


@dataclass(slots=True, frozen=True)
class RateLimit:
    """The limits of one provider account (or one model, with ``per_model=True``).

    Every dimension is optional and independent; ``None`` means "not limited".

    Attributes:
        rpm: Requests allowed per ``period`` (per minute with the default period).
        tpm: Tokens (input + output) allowed per ``period``. Each request reserves its
            estimate before the call and settles with the real usage afterwards.
        max_concurrency: Most requests in flight at once.
        period: Length of the limit period in seconds (60 for "per minute" limits; tests
            scale time down with ``period=1.0``).
        per_model: Keep separate buckets per model (providers that limit per model).
        burst: Fraction of a period's limit that may be spent at once, in ``(0, 1]``: the
            bucket capacity is ``burst * rpm`` requests and ``burst * tpm`` tokens. The
            sustained rate is always ``rpm / period``; ``burst`` only bounds how far ahead of
            it a quiet limiter may jump. Below 1 it leaves the provider slack to absorb
            network jitter (requests admitted together can arrive closer together).
        redis_url: Share this budget across processes through Redis (``redis://...``).
            ``None`` keeps the limiter in-process.
        redis_key: Name of the shared budget in Redis. Processes sharing one API key must
            use the same ``redis_key`` and the same limits. Never put the API key here.
        lease_ttl: Redis only: seconds after which a concurrency slot of a crashed process
            is reclaimed. Must exceed your longest request.
        window_margin: Redis only: seconds added to ``period`` for the strict sliding window
            of ``rpm`` requests (absorbs jitter between admission and arrival); ``None``:
            5% of the period, at most 0.25 s (see :attr:`strict_window`).
        on_redis_error: Redis only: ``"refuse"`` (fail closed, the default) or ``"allow"``
            (fail open, logged once per outage) when Redis cannot answer.
    """

    rpm: float | None = None
    tpm: float | None = None
    max_concurrency: int | None = None
    period: float = 60.0
    per_model: bool = False
    burst: float = 0.5
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_key: str | None = None
    lease_ttl: float = 600.0
    window_margin: float | None = None
    on_redis_error: str = "refuse"

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            v = getattr(self, name)
            if v is not None and not _positive_number(v):
                raise ConfigurationError(f"rate limit {name} must be a positive number, got {v!r}")
        mc = self.max_concurrency
        if mc is not None and (isinstance(mc, bool) or not isinstance(mc, int) or mc < 1):
            raise ConfigurationError(
                f"rate limit max_concurrency must be an integer >= 1, got {mc!r}"
            )
        if not _positive_number(self.period):
            raise ConfigurationError(
                f"rate limit period must be a positive number of seconds, got {self.period!r}"
            )
        if not _positive_number(self.burst) or self.burst > 1:
            raise ConfigurationError(
                f"rate limit burst must be a fraction in (0, 1], got {self.burst!r}"
            )
        if not isinstance(self.per_model, bool):
            raise ConfigurationError(
                f"rate limit per_model must be true or false, got {self.per_model!r}"
            )
        for name in ("redis_url", "redis_key"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v):
                raise ConfigurationError(f"rate limit {name} must be a non-empty string")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigurationError(
                "rate limit redis_url must start with redis://, rediss:// or unix://"
            )
        wm = self.window_margin
        if wm is not None and not (_positive_number(wm) or (wm == 0 and type(wm) in (int, float))):
            raise ConfigurationError(
                f"rate limit window_margin must be a number of seconds >= 0, got {wm!r}"
            )
        check_error_policy(self.on_redis_error, where="rate limit")
        if not _positive_number(self.lease_ttl):
            raise ConfigurationError(
                f"rate limit lease_ttl must be a positive number of seconds, got {self.lease_ttl!r}"
            )

    @property
    def strict_window(self) -> float:
        """Seconds in which a shared limiter starts at most ``rpm`` requests: ``period``
        plus ``window_margin`` (default 5% of the period, at most 0.25 s)."""
        margin = self.window_margin
        if margin is None:
            margin = min(0.05 * self.period, 0.25)
        return self.period + margin

    @property
    def request_rate(self) -> float | None:
        """Sustained requests per second, or ``None``."""
        return None if self.rpm is None else self.rpm / self.period

    @property
    def token_rate(self) -> float | None:
        """Sustained tokens per second, or ``None``."""
        return None if self.tpm is None else self.tpm / self.period

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RateLimit:
        """Build from a plain mapping, such as a TOML ``[providers.NAME.limits]`` table.

        Keys are the attribute names (``rpm``, ``tpm``, ``max_concurrency``, ``period``,
        ``per_model``, ``burst``, ``redis_url``, ``redis_key``, ``lease_ttl``,
        ``window_margin``, ``on_redis_error``).

        Raises:
            ConfigurationError: on an unknown key (with a suggestion) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                f"rate limits must be a table/mapping, got {type(data).__name__}"
            )
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"unknown rate limit key {key!r}{hint} (known: {', '.join(sorted(known))})"
                )
        return cls(**dict(data))


def _positive_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
