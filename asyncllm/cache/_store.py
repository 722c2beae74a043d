"""The backend as the cache sees it: reads and writes that never fail a request.

A read that finds a corrupt or foreign entry, a backend that is down, or an operation slower
than ``op_timeout`` all count as a miss (and are counted and logged, key prefix only); a
write that fails is dropped. A cache is an optimisation: it must never be the reason a
request fails, nor what makes it slow: a network backend that fails or times out trips an
:class:`~asyncllm._outage.Outage` breaker, and while it is tripped every read is a miss and
every write is skipped without touching the backend (counted as ``backend_bypassed``); one
request at a time probes it after a cool-down (0.5 s, doubling to 30 s).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import anyio
from aiocache.backends.memory import SimpleMemoryBackend
from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer

from .._exceptions import ConfigurationError
from .._outage import Outage
from .._types import Response
from . import _events as events
from ._serde import InvalidCacheEntry, ResponseSerializer
from ._stats import CacheStats, short

__all__ = ["Store", "as_hit", "seconds", "stored_copy"]

# Responses stored while a read was on its way are kept briefly, so that read does not start
# a second upstream call (see ``Store.recent_since``).
_RECENT = 256


def seconds(value: object, name: str, error: type[Exception]) -> float | None:
    """``value`` as a positive, finite number of seconds (``None`` stays ``None``).

    Stored with millisecond precision: Redis ``PSETEX`` needs at least 1 ms.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise error(f"{name} must be positive and finite, got {value!r}")
    return max(float(value), 0.001)


def stored_copy(response: Response) -> Response:
    """What is kept: no per-request fields (request id, cost, rate-limit headers)."""
    return dataclasses.replace(
        response, cached=False, cost_usd=None, request_id=None, rate_limits=None
    )


def as_hit(stored: Response, elapsed: float) -> Response:
    """A stored response as served to one caller: cached, free, as fast as the lookup."""
    return dataclasses.replace(
        stored, cached=True, cost_usd=0.0, latency=elapsed, time_to_first_token=elapsed
    )


def check_backend(backend: BaseCache) -> None:
    """Refuse backends that could run code on read or lose the response's types."""
    if not isinstance(backend, BaseCache):
        raise ConfigurationError("backend must be an aiocache cache (aiocache.BaseCache)")
    serializer = backend.serializer
    in_process = isinstance(backend, SimpleMemoryBackend)
    if not (
        isinstance(serializer, ResponseSerializer)
        or (in_process and isinstance(serializer, NullSerializer))
    ):
        raise ConfigurationError(
            "a response cache backend must use asyncllm.cache.ResponseSerializer (JSON, "
            "validated on read); only an in-process memory backend may store objects as is"
        )


class Store:
    """Bounded-time, never-raising access to an aiocache backend.

    Args:
        backend: The aiocache cache (checked with :func:`check_backend`).
        op_timeout: Seconds a read or write may take; not applied to in-process memory
            backends, whose operations cannot block.
        stats: Where to count stores, corrupt entries and backend errors.
    """

    __slots__ = ("_reader", "_recent", "_seq", "_stats", "backend", "op_timeout", "outage")

    def __init__(self, backend: BaseCache, op_timeout: float | None, stats: CacheStats) -> None:
        check_backend(backend)
        self.backend = backend
        self.op_timeout = None if isinstance(backend, SimpleMemoryBackend) else op_timeout
        # asyncllm's own memory backend reads synchronously (a hit costs a dict lookup).
        reader = getattr(backend, "reader", None)
        self._reader = reader if callable(reader) else None
        self._stats = stats
        self._recent: OrderedDict[str, tuple[int, Response]] = OrderedDict()
        self._seq = 0
        self.outage = Outage()

    @property
    def seq(self) -> int:
        """Increases with every successful write; take it before a read."""
        return self._seq

    async def read(self, key: str) -> Response | None:
        """The stored response, or ``None`` (missing, corrupt, backend down or slow)."""
        reader = self._reader
        read_now = reader() if reader is not None else None
        if read_now is not None:
            return self._checked(key, read_now(key))
        outage = self.outage
        if not outage.available():
            self._stats.backend_bypassed += 1
            return None
        try:
            if self.op_timeout is None:
                value = await self.backend.get(key)
            else:
                with anyio.fail_after(self.op_timeout):
                    value = await self.backend.get(key)
        except InvalidCacheEntry as exc:
            outage.ok()
            self._stats.corrupt += 1
            events.warning("cache_corrupt_entry", key=short(key), reason=str(exc))
            return None
        except Exception as exc:
            self._backend_failed(key, "get", exc)
            return None
        except BaseException:
            outage.abandon()
            raise
        outage.ok()
        return self._checked(key, value)

    def _checked(self, key: str, value: object) -> Response | None:
        if value is None:
            return None
        if not isinstance(value, Response) or value.finish_reason is None:
            self._stats.corrupt += 1
            events.warning("cache_corrupt_entry", key=short(key), reason="not a complete response")
            return None
        return value

    async def write(self, key: str, response: Response, ttl: float | None) -> None:
        """Store ``response`` (already a :func:`stored_copy`); failures are logged, not raised."""
        outage = self.outage
        if not outage.available():
            self._stats.backend_bypassed += 1
            return
        try:
            if self.op_timeout is None:
                await self.backend.set(key, response, ttl=ttl)
            else:
                with anyio.fail_after(self.op_timeout):
                    await self.backend.set(key, response, ttl=ttl)
        except ValueError as exc:
            outage.abandon()
            self._stats.store_errors += 1
            events.warning("cache_store_failed", key=short(key), reason=str(exc))
            return
        except Exception as exc:
            self._backend_failed(key, "set", exc)
            return
        except BaseException:
            outage.abandon()
            raise
        outage.ok()
        self._stats.stored += 1
        self._seq += 1
        self._recent[key] = (self._seq, response)
        self._recent.move_to_end(key)
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        events.debug("cache_store", key=short(key), ttl=ttl)

    def _backend_failed(self, key: str, op: str, exc: Exception) -> None:
        was_tripped = self.outage.tripped
        self.outage.failed()
        self._stats.backend_errors += 1
        events.warning("cache_backend_error", key=short(key), op=op, error=type(exc).__name__)
        if not was_tripped:
            events.warning("cache_backend_bypassed", cooldown=self.outage.statistics()["cooldown"])

    def recent_since(self, key: str, seq: int) -> Response | None:
        """A response written for ``key`` after ``seq`` was taken, if still remembered.

        A read that started before a shared call stored its answer may have reached the
        backend just before the write, and the call's flight is gone by the time the read
        returns; without this the reader would start a second upstream call.
        """
        hit = self._recent.get(key)
        return hit[1] if hit is not None and hit[0] > seq else None

    async def delete(self, key: str) -> bool:
        """Delete one entry; True when there was one."""
        self._recent.pop(key, None)
        return bool(await self.backend.delete(key))

    async def clear(self, prefix: str) -> None:
        """Delete every entry whose key starts with ``prefix + ":"`` (and only those: a
        shared Redis database may hold other data)."""
        self._recent.clear()
        # aiocache's memory backend matches a plain prefix; its Redis backend deletes
        # ``KEYS prefix:*``. Both leave every other key alone (a bare ``clear()`` would
        # FLUSHDB a Redis database).
        in_process = isinstance(self.backend, SimpleMemoryBackend)
        await self.backend.clear(namespace=prefix + ":" if in_process else prefix)

    def entries(self) -> int | None:
        """Entries held, for in-process backends (``None`` when it would cost a query)."""
        cache = getattr(self.backend, "_cache", None)
        in_process = isinstance(self.backend, SimpleMemoryBackend)
        return len(cache) if in_process and cache is not None else None
