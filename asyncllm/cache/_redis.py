"""A Redis backend for sharing cached responses between processes.

This is aiocache's own ``RedisCache``, which works with redis-py 8.1 as is for every command
the response cache uses (``GET``, ``SET``/``PSETEX`` with millisecond TTLs, ``DEL``); it
was checked against a real ``redis-server`` in the test suite. Two things are adjusted:

* ``close()``: aiocache calls ``redis.asyncio.Redis.close()``, deprecated since redis-py
  5.0.1 (a ``DeprecationWarning`` on every close); this backend calls ``aclose()``.
* construction: besides aiocache's host/port/password arguments it takes a ``redis://``
  URL or an existing ``redis.asyncio.Redis`` client (which it then does not close).

The serializer is always :class:`~asyncllm.cache.ResponseSerializer` (JSON, validated on
read): a serializer that can run code (pickle) is refused.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from aiocache import RedisCache
from aiocache.serializers import PickleSerializer

from .._exceptions import ConfigurationError
from .._redis_client import redis_from_url
from ._serde import ResponseSerializer

__all__ = ["RedisBackend"]


class RedisBackend(RedisCache):  # type: ignore[misc]
    """aiocache's Redis backend with a JSON-only serializer and redis-py 8 fixes.

    Args:
        url: A ``redis://`` or ``rediss://`` URL (``redis://localhost:6379/0``).
        client: An existing ``redis.asyncio.Redis`` to use instead (not closed by
            :meth:`close`). It must not decode responses (``decode_responses=False``).
        timeout: aiocache's per-operation timeout, which wraps every command in
            ``asyncio.wait_for`` (a task per command). Default ``None``: the
            :class:`~asyncllm.cache.ResponseCache` bounds each operation itself with a
            cancel scope (its ``op_timeout``), which costs no task.
        **kwargs: Passed to :class:`aiocache.RedisCache` (``endpoint``, ``port``, ``db``,
            ``password``, ``namespace``, ``pool_max_size``...).

    Raises:
        ConfigurationError: for a pickle serializer, or both ``url`` and ``client``.
    """

    NAME = "asyncllm-redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: aioredis.Redis | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        serializer = kwargs.pop("serializer", None) or ResponseSerializer()
        if isinstance(serializer, PickleSerializer) or not isinstance(
            serializer, ResponseSerializer
        ):
            raise ConfigurationError(
                "the Redis response cache stores JSON only (ResponseSerializer); a shared "
                "cache must not be able to run code in the client"
            )
        if url is not None and client is not None:
            raise ConfigurationError("pass url or client, not both")
        super().__init__(serializer=serializer, timeout=timeout, **kwargs)
        self._owns_client = client is None
        if client is not None:
            self.client = client
        elif url is not None:
            # decode_responses=False: entries are bytes, decoded by the serializer.
            # The library's connect and socket timeouts (a frozen Redis never holds a call).
            self.client = redis_from_url(url, decode_responses=False)

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        if self._owns_client:
            await self.client.aclose()

    def __repr__(self) -> str:
        # Never the URL or password: only where it points.
        kw = self.client.connection_pool.connection_kwargs
        return f"RedisBackend({kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)})"
