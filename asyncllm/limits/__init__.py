"""Per-provider rate limits: requests, tokens and concurrency, in-process or shared via Redis.

- :class:`RateLimit`: the configuration value (also read from a TOML table).
- :class:`RateLimiter`: in-process, one FIFO queue across requests, tokens and concurrency.
- :class:`RedisRateLimiter`: the same budget shared by processes through Redis.
- :func:`limiter`: builds the right one from a ``RateLimit``, a mapping or keywords.
- :class:`LimiterUnavailable`: a shared limiter could not reach Redis (it fails closed).

See ``docs/limits.md``.
"""

from __future__ import annotations

from .._exceptions import LimiterUnavailable
from ._common import reservation_tokens, usage_tokens
from ._config import RateLimit
from ._factory import limiter
from ._limiter import RateLimiter, RatePermit
from ._redis import RedisPermit, RedisRateLimiter

__all__ = [
    "LimiterUnavailable",
    "RateLimit",
    "RateLimiter",
    "RatePermit",
    "RedisPermit",
    "RedisRateLimiter",
    "limiter",
    "reservation_tokens",
    "usage_tokens",
]
