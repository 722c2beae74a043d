"""``ResponseCache``: the cache in front of the orchestrator.

A request goes, in order: policy check (``bypass``, or not deterministic enough: straight to
the provider) -> key -> join an identical call already in flight -> backend lookup (skipped
by ``refresh``) -> start a shared call in the cache's task group -> store the response if it
finished cleanly. A hit touches no limiter, budget or provider: the orchestrator's ``call``
is never invoked.

Who runs a shared call: the cache owns a task group for them, so it is an async context
manager, entered by the ``Client`` with itself (or ``async with ResponseCache() as cache:``
on its own). The call runs in that task group, so no caller's cancellation reaches it; only
the last waiter leaving cancels it.

A cache that was not entered still works, with two differences: a shared ``complete`` call
is hosted by the caller that started it (in a task group of its own), so if that caller
leaves early the call is cancelled and the other waiters start over, one of them hosting a
new call (counted in ``restarts``); and streams are not shared, only recorded on the way
through and stored when read cleanly to the end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

import anyio
from aiocache.base import BaseCache

from .._exceptions import ConfigurationError, InvalidRequestError
from .._types import Chunk, Response
from . import _events as events
from ._inflight import CLOSE_GRACE, UNWIND_GRACE, CachedStream, Flight, Orphaned
from ._key import KEY_PREFIX, cache_key, check_namespace
from ._memory import MemoryBackend
from ._policy import CachePolicy
from ._stats import CacheStats, short
from ._store import Store, as_hit, seconds, stored_copy
from ._stream import OpenStream, RecordingStream, StreamSharing

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._hooks import CacheMode, Route
    from .._types import ChatRequest

__all__ = ["ResponseCache"]

_MODES = ("use", "bypass", "refresh")
_CLOSE_GRACE = CLOSE_GRACE


class ResponseCache:
    """Caches responses, keyed on a normalized form of the request, and shares in-flight calls.

    Args:
        backend: An aiocache cache. Default: an in-process :class:`MemoryBackend` holding at
            most ``max_entries`` responses (least recently used evicted first). For a cache
            shared between processes use :meth:`redis`.
        max_entries: Bound of the default memory backend.
        ttl: Seconds an entry lives (``None``: until evicted). A per-request ``ttl=``
            overrides it.
        namespace: Separates tenants sharing a backend (part of every key).
        policy: What may be cached and stored (default :class:`CachePolicy`).
        op_timeout: Seconds a read or write on a network backend may take; past it the
            operation counts as a miss (``backend_errors``). Not applied to in-process
            memory backends.

    Use as ``async with ResponseCache() as cache:`` or pass it to ``Client(cache=...)``,
    which enters it.
    """

    def __init__(
        self,
        backend: BaseCache | None = None,
        *,
        max_entries: int = 10_000,
        ttl: float | None = None,
        namespace: str | None = None,
        policy: CachePolicy | None = None,
        op_timeout: float | None = 1.0,
    ) -> None:
        self._owns_backend = backend is None
        self._stats = CacheStats()
        self._store = Store(
            backend if backend is not None else MemoryBackend(max_entries),
            seconds(op_timeout, "op_timeout", ConfigurationError),
            self._stats,
        )
        self._ttl = seconds(ttl, "ttl", InvalidRequestError)
        self._namespace = None if namespace is None else check_namespace(namespace)
        self._policy = policy or CachePolicy()
        self._tg: TaskGroup | None = None
        self._flights: dict[str, Flight] = {}
        self._sharing = StreamSharing(self._stats)

    @classmethod
    def redis(
        cls,
        url: str | None = "redis://127.0.0.1:6379/0",
        *,
        client: Any = None,
        ttl: float | None = None,
        namespace: str | None = None,
        policy: CachePolicy | None = None,
        timeout: float | None = 1.0,
    ) -> ResponseCache:
        """A cache in Redis, shared between processes (entries are validated JSON).

        Args:
            url: Redis URL; ignored when ``client`` is given.
            client: An existing ``redis.asyncio.Redis`` (``decode_responses=False``).
            ttl: Default entry lifetime in seconds.
            namespace: Separates tenants sharing the Redis database.
            policy: What may be cached.
            timeout: Seconds a cache operation may take before it counts as a miss.
        """
        from ._redis import RedisBackend

        backend = RedisBackend(None if client is not None else url, client=client)
        cache = cls(backend, ttl=ttl, namespace=namespace, policy=policy, op_timeout=timeout)
        cache._owns_backend = True
        return cache

    @property
    def backend(self) -> BaseCache:
        """The aiocache backend."""
        return self._store.backend

    @property
    def policy(self) -> CachePolicy:
        """The cache policy."""
        return self._policy

    def __repr__(self) -> str:
        return f"ResponseCache(backend={type(self.backend).__name__}, ttl={self._ttl})"

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise ConfigurationError("this ResponseCache is already entered")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(self, *exc: object) -> None:
        tg, self._tg = self._tg, None
        try:
            if tg is not None:
                # Shared calls and streams still running are cancelled: their waiters get
                # CacheClosed. Answers already delivered are still being written to the
                # backend (after their waiters got them): those writes finish, so the last
                # answers before a shutdown are not lost to the cache. Each write is bounded
                # by ``op_timeout``; the deadline is only a backstop.
                for flight in list(self._flights.values()):
                    flight.scope.cancel()
                for stream in list(self._sharing.flights.values()):
                    stream.scope.cancel()
                grace = self._store.op_timeout or _CLOSE_GRACE
                tg.cancel_scope.deadline = anyio.current_time() + grace
                await tg.__aexit__(None, None, None)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the backend's connections if this cache created the backend."""
        if self._owns_backend:
            with anyio.CancelScope(shield=True):
                await self.backend.close()

    # -- keys and backend access ---------------------------------------------------------

    def key_for(self, request: ChatRequest, route: Route) -> str:
        """The key ``request`` on ``route`` is stored under in this cache."""
        return cache_key(
            request,
            route,
            namespace=self._namespace,
            fold_whitespace=self._policy.fold_whitespace,
        )

    def _resolve(self, mode: str, ttl: float | None) -> float | None:
        if mode not in _MODES:
            raise InvalidRequestError(f"cache mode must be one of {_MODES}, got {mode!r}")
        return self._ttl if ttl is None else seconds(ttl, "ttl", InvalidRequestError)

    async def get(self, request: ChatRequest, route: Route) -> Response | None:
        """The stored response for ``request`` on ``route``, if any (no statistics counted)."""
        stored = await self._store.read(self.key_for(request, route))
        return None if stored is None else as_hit(stored, 0.0)

    async def invalidate(self, request: ChatRequest, route: Route) -> bool:
        """Delete the entry for ``request`` on ``route``; True when there was one."""
        return await self._store.delete(self.key_for(request, route))

    async def clear(self) -> None:
        """Delete this cache's entries: those of its namespace, or without a namespace,
        every asyncllm entry of the backend (other keys of a shared Redis are left alone;
        Redis is scanned with ``KEYS``, an admin operation on a large database)."""
        prefix = KEY_PREFIX + self._namespace if self._namespace else KEY_PREFIX[:-1]
        await self._store.clear(prefix)

    # -- complete -------------------------------------------------------------------------

    async def complete(
        self,
        request: ChatRequest,
        route: Route,
        call: Callable[[], Awaitable[Response]],
        *,
        mode: CacheMode = "use",
        ttl: float | None = None,
    ) -> Response:
        """Answer from the cache, join an identical call in flight, or run ``call`` once.

        Args:
            request: The request (its key is built from it and ``route``).
            route: ``(provider name, kind, model)`` of each provider that may answer.
            call: Runs the request upstream (through limiters, budgets, providers).
            mode: ``"use"`` (read and write), ``"refresh"`` (skip the read, write) or
                ``"bypass"`` (neither: ``call`` runs as if there were no cache).
            ttl: This entry's lifetime in seconds (default: the cache's).

        Returns:
            The response. From a hit or a shared call: ``cached=True`` and ``cost_usd=0.0``.

        Raises:
            InvalidRequestError: for a bad mode or ttl, or a request that cannot be keyed.
            Exception: whatever ``call`` raised (shared by every waiter of that call).
        """
        ttl_s = self._resolve(mode, ttl)
        if mode == "bypass" or not self._policy.is_cacheable(request):
            self._count_skip(mode)
            return await call()
        key = self.key_for(request, route)
        started = time.perf_counter()
        while True:
            flight = self._flights.get(key)
            if flight is not None and mode == "refresh" and flight.done.is_set():
                flight = None  # refresh joins a call still running, never a finished one
            if flight is None and mode == "use":
                stored = await self._read(key, started, stream=False)
                if stored is not None:
                    return stored
                flight = self._flights.get(key)
            if flight is None:
                flight = Flight(key, hosted=self._tg is None)
                self._flights[key] = flight
                self._count_start(mode, key)
                if self._tg is None:
                    return await self._host(flight, call, ttl_s)
                self._tg.start_soon(self._run, flight, call, ttl_s)
                leader = True
            else:
                leader = False
                self._stats.deduplicated += 1
                events.debug("cache_join", key=short(key))
            try:
                return await self._wait(flight, leader)
            except Orphaned:
                # The caller hosting the call left before it finished: start over (one of
                # the waiters becomes the new host).
                self._stats.restarts += 1

    async def _read(self, key: str, started: float, *, stream: bool) -> Response | None:
        """A hit for ``key`` from the backend (or a write that raced this read)."""
        seq = self._store.seq
        stored = await self._store.read(key) or self._store.recent_since(key, seq)
        if stored is None:
            return None
        self._stats.hits += 1
        events.debug("cache_hit", key=short(key), stream=stream)
        return as_hit(stored, time.perf_counter() - started)

    def _count_skip(self, mode: str) -> None:
        if mode == "bypass":
            self._stats.bypasses += 1
        else:
            self._stats.uncacheable += 1
        events.debug("cache_skip", reason="bypass" if mode == "bypass" else "nondeterministic")

    def _count_start(self, mode: str, key: str) -> None:
        if mode == "refresh":
            self._stats.refreshes += 1
        else:
            self._stats.misses += 1
        events.debug("cache_miss", key=short(key), mode=mode)

    def _forget(self, flight: Flight) -> None:
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]

    async def _host(
        self, flight: Flight, call: Callable[[], Awaitable[Response]], ttl: float | None
    ) -> Response:
        # No cache task group (the cache was not entered): this caller hosts the call in a
        # task group of its own and waits for it, storing included. Others still join it.
        flight.waiters += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._run, flight, call, ttl)
        finally:
            flight.waiters -= 1
        return flight.outcome(leader=True)

    async def _wait(self, flight: Flight, leader: bool) -> Response:
        flight.waiters += 1
        try:
            await flight.done.wait()
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done.is_set():
                # The last waiter left: nobody wants the answer, stop paying for it.
                flight.scope.cancel()
                self._forget(flight)
                events.debug("cache_call_abandoned", key=short(flight.key))
                # Its attempts end (and are reported) before this request is: observers see
                # attempt_finished before request_finished, as without a cache. Shielded,
                # bounded: the upstream call is already cancelled.
                with anyio.CancelScope(shield=True) as scope:
                    scope.deadline = anyio.current_time() + UNWIND_GRACE
                    await flight.done.wait()
        return flight.outcome(leader)

    async def _run(
        self, flight: Flight, call: Callable[[], Awaitable[Response]], ttl: float | None
    ) -> None:
        try:
            with flight.scope:
                try:
                    response = await call()
                except Exception as exc:
                    flight.fail(exc)
                    self._stats.errors += 1
                    events.debug(
                        "cache_call_failed", key=short(flight.key), error=type(exc).__name__
                    )
                else:
                    flight.result = response
                    flight.shared = stored_copy(response)
        finally:
            flight.done.set()
            if flight.shared is None:
                self._forget(flight)
        # Still joinable while storing: a request arriving now gets the answer at once.
        try:
            if flight.shared is not None and self._policy.is_storable(flight.shared):
                await self._store.write(flight.key, flight.shared, ttl)
        finally:
            self._forget(flight)

    # -- stream ---------------------------------------------------------------------------

    def stream(
        self,
        request: ChatRequest,
        route: Route,
        open_stream: OpenStream,
        *,
        mode: CacheMode = "use",
        ttl: float | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[Chunk]]:
        """Replay a stored answer as chunks, share an identical stream in flight, or stream
        through ``open_stream`` and store the answer once it finished cleanly.

        A hit replays the stored text chunks with their original boundaries, then one chunk
        with the tool calls (if any), then a final chunk with usage and finish reason. A miss
        passes the upstream chunks through unchanged; the response is stored only when the
        stream ended with a finish reason, raised nothing, and a consumer read it to the
        end. Identical streams in flight are shared: a later subscriber first receives the
        chunks already sent, then the rest live.

        Args: as :meth:`complete`, with ``open_stream`` opening the upstream stream.

        Returns:
            An async context manager giving a :class:`CachedStream` (for a bypassed or
            uncacheable request: whatever ``open_stream`` gives).
        """
        return self._stream(request, route, open_stream, mode, ttl)

    @asynccontextmanager
    async def _stream(
        self,
        request: ChatRequest,
        route: Route,
        open_stream: OpenStream,
        mode: CacheMode,
        ttl: float | None,
    ) -> AsyncIterator[AsyncIterator[Chunk]]:
        ttl_s = self._resolve(mode, ttl)
        if mode == "bypass" or not self._policy.is_cacheable(request):
            self._count_skip(mode)
            async with open_stream() as upstream:
                yield upstream
            return
        key = self.key_for(request, route)
        started = time.perf_counter()
        sharing = self._sharing
        flight = sharing.joinable(key, refresh=mode == "refresh")
        if flight is None and mode == "use":
            stored = await self._read(key, started, stream=True)
            if stored is not None:
                yield CachedStream(replay=stored)
                return
            flight = sharing.joinable(key, refresh=False)

        async def store(response: Response) -> None:
            if self._policy.is_storable(response):
                # Written by whichever reader reached the end first, in its task: a reader
                # cancelled right then (its deadline, its caller) must not lose the entry.
                # Bounded: network writes by ``op_timeout``, the rest by the close grace.
                with anyio.CancelScope(shield=True) as scope:
                    scope.deadline = anyio.current_time() + (self._store.op_timeout or _CLOSE_GRACE)
                    await self._store.write(key, stored_copy(response), ttl_s)

        if flight is None and self._tg is None:
            # No task group to share a stream from: pass it through, recording it.
            self._count_start(mode, key)
            async with open_stream() as upstream:
                yield RecordingStream(upstream, route, store)
            return
        leader = flight is None
        if flight is None:
            assert self._tg is not None
            flight = sharing.start(key, self._tg, open_stream, route, store)
            self._count_start(mode, key)
        else:
            self._stats.deduplicated += 1
            events.debug("cache_join", key=short(key), stream=True)
        async with sharing.subscribe(
            flight, leader=leader, model=route[0][2] if route else ""
        ) as shared:
            yield shared

    # -- statistics -----------------------------------------------------------------------

    def statistics(self) -> dict[str, Any]:
        """Counters since creation: ``hits``, ``misses``, ``hit_rate``, ``deduplicated``,
        ``refreshes``, ``bypasses``, ``uncacheable``, ``errors``, ``stored``,
        ``store_errors``, ``corrupt``, ``backend_errors``, ``backend_bypassed``;
        ``in_flight`` shared calls and streams; ``entries`` (memory backends; ``None`` for
        Redis); ``evictions``; ``backend_outage`` (the breaker: ``tripped``, ``trips``,
        ``cooldown``)."""
        out = self._stats.as_dict()
        out["in_flight"] = len(self._flights) + len(self._sharing.flights)
        out["entries"] = self._store.entries()
        out["evictions"] = getattr(self.backend, "evictions", 0)
        out["backend"] = type(self.backend).__name__
        out["backend_outage"] = self._store.outage.statistics()
        return out
