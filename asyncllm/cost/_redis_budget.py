"""A budget shared by every process that points at the same Redis: :class:`RedisBudget`.

Reserving is one Lua script that checks every bucket the attempt counts against and adds
the reservation to all of them, or to none: processes together can never overcommit a
bucket. Settling is a second script, run in ``__aexit__`` shielded from cancellation.
Keys expire after their period (plus the lease); a rolling window keeps a sorted set of
settled costs, evicted as they age out.

Each reservation is also a *lease* (``lease`` seconds): if the process holding it dies
before settling, the next script to touch the bucket after the lease ran out turns it into
spent money at its worst case (the attempt may well have been billed). An attempt that runs
longer than its lease is treated the same way, so keep ``lease`` above your longest
request.

Redis trouble never holds a caller: every call has the library's connect and socket
timeouts (:func:`~asyncllm._redis_client.redis_from_url`), is bounded by ``timeout`` and by
the caller's own deadline (a cancel scope), and a failure trips an
:class:`~asyncllm._outage.Outage` breaker, so during an outage callers get the
``on_redis_error`` answer at once instead of each waiting out a timeout:

* ``"refuse"`` (default, fail closed): :class:`BudgetUnavailable`;
* ``"allow"`` (fail open): the attempt runs unbudgeted, logged as ``budget.unavailable``.

Booking a finished attempt's cost waits at most ``settle_timeout`` (shielded from
cancellation): an answer that already succeeded is not held while Redis is slow. A booking
that could not be made is never dropped: it is kept in this process (counted as
``pending_settlements``, logged as ``budget.settle_deferred``) and retried before the next
reservation and on :meth:`RedisBudget.aclose`; meanwhile its reservation still counts
against the limit in Redis, and if the process dies first, the lease books its worst case.
A reservation cut short by a timeout or the caller's deadline (it may have been applied
after all) is released the same way.

Clocks: calendar periods and leases use the client's wall clock; keep hosts NTP-synced.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import BudgetExceeded, BudgetUnavailable, ConfigurationError
from .._logging import get_logger
from .._outage import Outage
from .._redis_client import (
    REDIS_SOCKET_TIMEOUT,
    RedisErrorPolicy,
    check_error_policy,
    redis_from_url,
)
from ._budget import BudgetBase, ReservationBase
from ._limit import NANO, SpendLimit, period_bounds
from ._redis_lua import PEEK, RESERVE, SETTLE

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .._types import ChatRequest

__all__ = ["BudgetUnavailable", "RedisBudget"]

_log = get_logger("asyncllm.budget")

#: Deferred bookings a reservation makes on its way (the rest wait for the next ones).
_FLUSH_BATCH = 8


class _Target:
    __slots__ = ("key", "keys", "limit", "period_start", "ttl", "window")

    def __init__(self, limit: SpendLimit, key: str, keys: list[str], start: float, ttl: int):
        self.limit = limit
        self.key = key
        self.keys = keys
        self.period_start = start
        self.ttl = ttl
        self.window = limit.rolling or 0.0


class _RedisReservation(ReservationBase):
    """The context manager :meth:`RedisBudget.reserve` returns."""

    __slots__ = ("_budget", "_id", "_targets")

    def __init__(self, budget: RedisBudget, args: tuple[ChatRequest, str, str, str, bool]):
        super().__init__(args)
        self._budget = budget
        self._targets: list[_Target] = []
        self._id = ""

    async def __aenter__(self) -> _RedisReservation:
        await self._budget._take(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._targets:
            return
        with anyio.CancelScope(shield=True):
            await self._budget._give_back(self)


class RedisBudget(BudgetBase):
    """A budget shared between processes through Redis (needs the ``redis`` extra).

    Args:
        redis: A ``redis.asyncio.Redis`` client, or a URL (``redis://host:6379/0``) for a
            client this budget owns (closed by :meth:`aclose`).
        *limits: :class:`SpendLimit` specs or plain USD-per-day numbers.
        prefix: Key prefix; budgets with the same prefix and name share state.
        lease: Seconds a reservation lives unsettled before it counts as spent.
        max_connections: Most Redis calls this budget has in flight at once; more wait
            their turn (redis-py's pool raises instead of waiting once it is full). Also the
            pool size of a client created from a URL.
        on_redis_error: When Redis cannot answer: ``"refuse"`` (default) refuses with
            :class:`BudgetUnavailable`; ``"allow"`` lets the attempt through unbudgeted
            (logged as ``budget.unavailable``).
        timeout: Most seconds a reservation waits for Redis (queueing for a connection
            included) before ``on_redis_error`` applies; the caller's deadline bounds it too.
        settle_timeout: Most seconds a finished attempt waits for its cost to be booked;
            a booking that takes longer is deferred (see the module docs), never dropped.
        **kwargs: As :class:`~asyncllm.cost.MemoryBudget` (``pricing``, ``name``,
            ``thresholds``, ``on_alert``, ``default_max_tokens``, ``unknown_price``,
            ``clock``).
    """

    def __init__(
        self,
        redis: Redis | str,
        *limits: SpendLimit | float,
        prefix: str = "asyncllm:budget",
        lease: float = 900.0,
        on_redis_error: RedisErrorPolicy = "refuse",
        timeout: float = REDIS_SOCKET_TIMEOUT,
        settle_timeout: float = 0.25,
        max_connections: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(*limits, **kwargs)
        if not lease > 0:
            raise ConfigurationError(f"lease must be > 0, got {lease!r}")
        for name, value in (("timeout", timeout), ("settle_timeout", settle_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"RedisBudget {name} must be > 0 seconds, got {value!r}")
        self._policy = check_error_policy(on_redis_error, where="RedisBudget")
        self._timeout = float(timeout)
        self._settle_timeout = float(settle_timeout)
        self._outage = Outage()
        # Bookings (and releases of reservations that may have been applied) not yet made:
        # (cost nano-USD, reservation id, targets, is a release).
        self._pending: deque[tuple[int, str, list[_Target], bool]] = deque()
        if isinstance(redis, str):
            self._redis: Redis = redis_from_url(redis, max_connections=max_connections)
            self._owns = True
        else:
            self._redis = redis
            self._owns = False
        self._prefix = prefix
        self._lease = lease
        self._gate = anyio.Semaphore(max_connections)
        self._reserve = self._redis.register_script(RESERVE)
        self._settle = self._redis.register_script(SETTLE)
        self._peek = self._redis.register_script(PEEK)
        self._seen: dict[str, tuple[SpendLimit, dict[str, Any]]] = {}
        self._local = {"reservations": 0, "refusals": 0, "errors": 0, "settled": 0}

    async def aclose(self) -> None:
        """Book deferred costs (bounded by ``timeout``), then close the Redis client if
        this budget created it. Bookings still not made are logged; their leases book
        their worst cases."""
        with anyio.CancelScope(shield=True):
            if self._pending:
                await self._flush(force=True)
            if self._pending:
                _log.error("budget.settle_lost_to_lease", budget=self.name, n=len(self._pending))
            if self._owns:
                await self._redis.aclose()

    def reserve(
        self, request: ChatRequest, *, provider: str, kind: str, model: str, local: bool
    ) -> _RedisReservation:
        """Reserve the attempt's worst-case cost, or raise ``BudgetExceeded`` on entry."""
        return _RedisReservation(self, (request, provider, kind, model, local))

    def _target(self, limit: SpendLimit, key: str, now: float) -> _Target:
        pid, start, end = period_bounds(limit.period, now)
        base = f"{self._prefix}:{{{self.name}}}:{key}:{pid}"
        if limit.rolling is not None:
            ttl = limit.rolling + self._lease + 60
        else:
            ttl = end - now + self._lease + 60
        return _Target(limit, key, [base, base + ":w", base + ":l"], start, math.ceil(ttl))

    def _args(self, targets: list[_Target]) -> list[Any]:
        out: list[Any] = []
        for t in targets:
            out += [round(t.limit.usd * NANO), repr(t.window), t.ttl]
        return out

    async def _take(self, r: _RedisReservation) -> None:
        request, provider, kind, model, local = r._args
        pairs = self._targets(request, provider, kind)
        if not pairs:
            return
        # Even a free attempt (local model, or unknown price allowed) goes to Redis: once
        # a limit has been passed, nothing more runs.
        amount = self._worst_nano(request, provider, kind, model, local)
        if self._pending:
            await self._flush()
        now = self._clock()
        targets = [self._target(lim, key, now) for lim, key in pairs]
        rid = uuid.uuid4().hex
        keys = [k for t in targets for k in t.keys]
        args = [repr(now), amount, rid, repr(now + self._lease), len(targets), *self._args(targets)]
        sent = False
        try:
            # Waiting for a connection is local queueing, bounded by the caller's deadline;
            # the Redis call itself is bounded by ``timeout``. The breaker is checked once
            # a connection is ours, so callers queued behind a frozen Redis fail fast.
            async with self._gate:
                if not self._outage.available():
                    self._local["errors"] += 1
                    if self._policy == "allow":
                        _log.warning("budget.unavailable", budget=self.name, error="outage")
                        return
                    raise BudgetUnavailable(self.name, amount / NANO, "Redis is down")
                sent = True
                with anyio.fail_after(self._timeout):
                    reply = await self._reserve(keys=keys, args=args)
        except BudgetUnavailable:
            raise
        except BaseException as exc:
            if sent:
                # The script may have run (or may run once Redis thaws): release it.
                self._pending.append((0, rid, targets, True))
            if not isinstance(exc, Exception):  # the caller's deadline or cancellation
                self._outage.abandon()
                raise
            self._outage.failed()
            self._local["errors"] += 1
            _log.error("budget.unavailable", budget=self.name, error=type(exc).__name__)
            if self._policy == "allow":
                return
            raise BudgetUnavailable(self.name, amount / NANO, exc) from exc
        self._outage.ok()
        if reply[0] == 2:  # released before it arrived: only a late, abandoned call sees this
            raise BudgetUnavailable(self.name, amount / NANO, "reservation released")
        if reply[0] != 1:
            i = int(reply[1]) - 1
            t = targets[i]
            self._remember(t, reply[2])
            self._local["refusals"] += 1
            spent, reserved = int(reply[2][0]), int(reply[2][1])
            if int(reply[3]) == 1:
                self._bucket_alert("refused", t, None, spent)
            remaining = max(0, round(t.limit.usd * NANO) - spent - reserved) / NANO
            raise BudgetExceeded(f"{self.name}:{t.key}", amount / NANO, remaining)
        for t, s in zip(targets, reply[2:], strict=True):
            self._remember(t, s)
        self._local["reservations"] += 1
        r._targets, r._amount, r._id = targets, amount, rid

    async def _give_back(self, r: _RedisReservation) -> None:
        targets, r._targets = r._targets, []
        cost = max(0, r._booked_nano())
        if not self._outage.available() or not await self._book(cost, r._id, targets):
            self._pending.append((cost, r._id, targets, False))
            _log.warning(
                "budget.settle_deferred",
                budget=self.name,
                cost_usd=cost / NANO,
                pending=len(self._pending),
            )

    async def flush(self) -> int:
        """Make the bookings deferred while Redis was slow or down now (each bounded by
        ``settle_timeout``); returns how many are still pending."""
        with anyio.CancelScope(shield=True):
            await self._flush(force=True)
        return len(self._pending)

    async def _flush(self, *, force: bool = False) -> None:
        """Make deferred bookings, oldest first, while Redis answers (a reservation
        flushes at most ``_FLUSH_BATCH``, so a backlog never delays one caller long)."""
        budget = len(self._pending) if force else _FLUSH_BATCH
        while self._pending and budget > 0 and (force or self._outage.available()):
            budget -= 1
            # Taken off before the await: concurrent flushers never book (and drop) the
            # same entry; one that could not be booked goes back to the front.
            item = self._pending.popleft()
            try:
                booked = await self._book(item[0], item[1], item[2], release=item[3])
            except BaseException:
                self._pending.appendleft(item)
                raise
            if not booked:
                self._pending.appendleft(item)
                return

    async def _book(
        self, cost: int, rid: str, targets: list[_Target], *, release: bool = False
    ) -> bool:
        """Run the settle script within ``settle_timeout``; False when it could not be."""
        now = self._clock()
        keys = [k for t in targets for k in t.keys]
        thresholds = [repr(t) for t in self._thresholds]
        args = [repr(now), cost, rid, len(targets), *self._args(targets)]
        # A release (cost 0 of a reservation whose caller gave up) leaves a tombstone if its
        # reservation has not arrived yet, so a reservation delayed by a frozen Redis
        # cannot be applied after its release.
        args += [len(thresholds), *thresholds, "1" if release else "0"]
        reply: Any = None
        called = False
        error = "timeout"
        with anyio.move_on_after(self._settle_timeout):
            async with self._gate:
                called = True
                try:
                    reply = await self._settle(keys=keys, args=args)
                except Exception as exc:
                    error = type(exc).__name__
        if reply is None:
            if called:  # Redis failed or was too slow; queueing for a connection is not
                self._outage.failed()
                self._local["errors"] += 1
                _log.error("budget.settle_failed", budget=self.name, error=error)
            else:
                self._outage.abandon()  # a probe that never reached Redis proves nothing
            return False
        self._outage.ok()
        self._local["settled"] += 1
        for t, s in zip(targets, reply, strict=True):
            self._remember(t, s)
            fired = s[3].decode() if isinstance(s[3], bytes) else str(s[3])
            for th in fired.split(",") if fired else ():
                self._bucket_alert("threshold", t, float(th), int(s[0]))
        return True

    def _remember(self, t: _Target, s: list[Any]) -> None:
        self._seen[t.key] = (
            t.limit,
            {
                "limit": t.limit.name,
                "period_start": t.period_start,
                "limit_usd": t.limit.usd,
                "spent_usd": int(s[0]) / NANO,
                "reserved_usd": int(s[1]) / NANO,
                "remaining_usd": max(0, round(t.limit.usd * NANO) - int(s[0]) - int(s[1])) / NANO,
                "refusals": int(s[2]),
            },
        )

    def statistics(self) -> dict[str, Any]:
        """This process's counters and the last bucket states Redis reported to it.

        Use :meth:`fetch_statistics` for the current, shared state.
        """
        return {
            "name": self.name,
            **self._local,
            "pending_settlements": len(self._pending),
            "redis": self._outage.statistics(),
            "buckets": {k: dict(v[1]) for k, v in self._seen.items()},
        }

    async def fetch_statistics(self) -> dict[str, Any]:
        """Read the current shared state of every bucket this process has used (and of
        every limit without ``per_tag``) from Redis."""
        now = self._clock()
        wanted = {str(lim.name): lim for lim in self.limits if lim.per_tag is None}
        wanted.update({k: v[0] for k, v in self._seen.items()})
        for key, lim in wanted.items():
            t = self._target(lim, key, now)
            with anyio.fail_after(self._timeout):
                async with self._gate:
                    s = await self._peek(keys=t.keys, args=[repr(now), repr(t.window)])
            self._remember(t, s)
        return self.statistics()
