"""An in-process aiocache backend bounded in entries (least recently used goes first).

aiocache's ``SimpleMemoryCache`` is unbounded. This subclass keeps its storage and TTL
semantics (a per-entry ``loop.call_later`` timer, so expiry follows the event loop's clock
and ``looptime`` tests run instantly) and turns the dict into an LRU index: a read moves the
entry to the end, a write past ``max_entries`` deletes from the front through aiocache's own
delete, which also cancels the entry's timer.

Values are stored as given (aiocache's ``NullSerializer``): the response cache keeps its own
immutable-enough copies, so a hit costs no decoding.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiocache import SimpleMemoryCache
from aiocache.serializers import NullSerializer

__all__ = ["MemoryBackend"]


class MemoryBackend(SimpleMemoryCache):  # type: ignore[misc]
    """aiocache's memory backend with an entry bound and LRU eviction.

    Args:
        max_entries: The most entries kept; the least recently read or written go first.
        **kwargs: Passed to :class:`aiocache.SimpleMemoryCache` (``namespace``, ``ttl``...).
            ``timeout`` defaults to ``None``: a dict lookup needs no ``asyncio.wait_for``
            around it, and skipping it keeps a hit free of task switches.
    """

    NAME = "asyncllm-memory"

    def __init__(self, max_entries: int = 10_000, **kwargs: Any) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive integer")
        kwargs.setdefault("timeout", None)
        super().__init__(**kwargs)
        # aiocache reads it on every call; read once here (see reader()).
        self._disabled = os.getenv("AIOCACHE_DISABLE") == "1"
        self.max_entries = max_entries
        self._cache: OrderedDict[str, object] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._cache)

    def reader(self) -> Callable[[str], Any] | None:
        """A synchronous ``get`` (what aiocache's ``get`` returns, without its decorator
        chain: a hit is a dict lookup), or ``None`` when this backend is configured so
        that ``get`` would do more (plugins, a serializer, ``AIOCACHE_DISABLE=1`` when the
        backend was made). Cheap: asked on every read, so plugins added later count."""
        if self.plugins or self._disabled or type(self.serializer) is not NullSerializer:
            return None
        return self.get_now

    def get_now(self, key: str) -> Any:
        """The value stored under ``key`` (in this backend's namespace), or ``None``."""
        ns_key = self.build_key(key)
        value = self._cache.get(ns_key)
        if value is not None:
            self._cache.move_to_end(ns_key)
        return value

    async def _get(self, key: str, encoding: str | None = "utf-8", _conn: Any = None) -> Any:
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
        return value

    async def _set(
        self,
        key: str,
        value: object,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> Any:
        ok = await super()._set(key, value, ttl=ttl, _cas_token=_cas_token, _conn=_conn)
        if ok is True:
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                oldest = next(iter(self._cache))
                await self._delete(oldest)
                self.evictions += 1
        return ok

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        if namespace:
            result: bool = await super()._clear(namespace, _conn=_conn)
            return result
        # The base class drops its timers without cancelling them: a stale timer would
        # later delete a new entry stored under the same key. It also resets the store to
        # a plain dict, losing the LRU order.
        handlers: dict[str, asyncio.TimerHandle] = self._handlers
        for handle in handlers.values():
            handle.cancel()
        handlers.clear()
        self._cache = OrderedDict()
        return True
