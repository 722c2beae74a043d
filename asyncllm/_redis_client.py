"""One place for how asyncllm talks to Redis: the timeouts it sets and what a failure means.

Every Redis-backed piece (shared rate limiter, shared budget, shared cache) builds its client
from a URL with :func:`redis_from_url`, so connect and socket timeouts are always set by the
library, never left at redis-py's defaults (no connect timeout; a frozen server holds a call
until the OS gives up). The timeouts bound a single Redis call; callers additionally bound each
call by their own deadline with an anyio cancel scope, so a frozen Redis never holds a request
past its deadline.

:data:`RedisErrorPolicy` names what a shared limit or budget does when Redis cannot answer:
``"refuse"`` (the default: fail closed, the request is refused with a typed error) or
``"allow"`` (fail open: proceed without the shared check, loudly logged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "REDIS_CONNECT_TIMEOUT",
    "REDIS_SOCKET_TIMEOUT",
    "RedisErrorPolicy",
    "check_error_policy",
    "redis_from_url",
]

#: Seconds to open a TCP connection to Redis before the call fails.
REDIS_CONNECT_TIMEOUT = 1.0
#: Seconds one Redis command may wait for its reply before the call fails.
REDIS_SOCKET_TIMEOUT = 1.0

RedisErrorPolicy = Literal["refuse", "allow"]


def check_error_policy(value: str, *, where: str) -> RedisErrorPolicy:
    """Validate an ``on_redis_error`` argument, naming where it was given."""
    if value not in ("refuse", "allow"):
        raise ConfigurationError(
            f"{where}: on_redis_error must be 'refuse' or 'allow', got {value!r}"
        )
    return value  # type: ignore[return-value]


def redis_from_url(url: str, **kwargs: Any) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with the library's timeouts set.

    Keyword arguments are passed to ``Redis.from_url`` and override the defaults.
    """
    try:
        from redis.asyncio import Redis
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "Redis support needs redis-py: pip install 'asyncllm[redis]'"
        ) from e
    kwargs.setdefault("socket_connect_timeout", REDIS_CONNECT_TIMEOUT)
    kwargs.setdefault("socket_timeout", REDIS_SOCKET_TIMEOUT)
    return Redis.from_url(url, **kwargs)
