"""``limiter(...)``: build the right limiter from a ``RateLimit``, a mapping or keywords."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from ._common import Clock
from ._config import RateLimit
from ._limiter import RateLimiter
from ._redis import RedisRateLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["limiter"]


def limiter(
    config: RateLimit | Mapping[str, Any] | None = None,
    /,
    *,
    name: str = "",
    clock: Clock | None = None,
    redis_client: Redis | None = None,
    **limits: Any,
) -> RateLimiter | RedisRateLimiter:
    """Build a limiter: in-process by default, shared through Redis when configured.

    Examples::

        limiter(rpm=500, tpm=200_000)                       # in-process
        limiter({"rpm": 500, "max_concurrency": 16})        # from a TOML table
        limiter(rpm=500, redis_url="redis://localhost:6379/0", redis_key="openai-prod")

    Args:
        config: A :class:`RateLimit`, or a mapping read with :meth:`RateLimit.from_mapping`.
        name: Label for statistics (usually the provider name).
        clock: Clock for the in-process limiter (Redis uses the server's clock).
        redis_client: Use this ``redis.asyncio.Redis`` for a shared limiter instead of
            ``redis_url``.
        **limits: ``RateLimit`` fields, when ``config`` is not given.

    Raises:
        ConfigurationError: on bad keys or values, or both ``config`` and keywords.
    """
    if config is not None and limits:
        raise ConfigurationError("pass either a RateLimit/mapping or keyword limits, not both")
    if config is None:
        cfg = RateLimit.from_mapping(limits)
    elif isinstance(config, RateLimit):
        cfg = config
    else:
        cfg = RateLimit.from_mapping(config)
    if cfg.redis_url is not None or redis_client is not None:
        return RedisRateLimiter.from_config(cfg, client=redis_client, name=name)
    if cfg.redis_key is not None:
        raise ConfigurationError("redis_key is set but redis_url is not")
    return RateLimiter.from_config(cfg, clock=clock, name=name)
