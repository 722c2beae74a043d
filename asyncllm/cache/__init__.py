"""Response cache: the cheapest LLM call is the one not made.

Responses are stored behind aiocache, keyed on a normalized form of the request (see
:func:`cache_key`), and identical requests in flight share one upstream call::

    async with ResponseCache(ttl=3600) as cache:
        response = await cache.complete(request, route, call)

The default backend is in-process and bounded (:class:`MemoryBackend`); ``ResponseCache.redis``
shares entries between processes through Redis, as validated JSON (never pickle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports as _lazy_exports
from ._cache import ResponseCache
from ._inflight import CacheClosed, CachedStream
from ._key import KEY_VERSION, cache_key, canonical_request
from ._memory import MemoryBackend
from ._policy import CachePolicy
from ._serde import InvalidCacheEntry, ResponseSerializer, decode_response, encode_response
from ._stats import CacheStats

if TYPE_CHECKING:
    from ._redis import RedisBackend

__all__ = [
    "KEY_VERSION",
    "CacheClosed",
    "CachePolicy",
    "CacheStats",
    "CachedStream",
    "InvalidCacheEntry",
    "MemoryBackend",
    "RedisBackend",
    "ResponseCache",
    "ResponseSerializer",
    "cache_key",
    "canonical_request",
    "decode_response",
    "encode_response",
]


# redis is an optional dependency: import its backend only when asked for.
__getattr__ = _lazy_exports(__name__, {"RedisBackend": "._redis"})
