"""``RedisRateLimiter``: one budget of requests, tokens and concurrency shared by processes.

Every process (or machine) that uses one API key points a ``RedisRateLimiter`` with the same
``key`` and limits at one Redis. Each admission is one atomic Lua step (``_lua.py``) on
server time, so the budget is exact no matter how many processes take from it.

Choices, and why:

- **One round trip per admission.** The script grants a *start time* (possibly in the
  future) instead of "no, retry later": the caller sleeps until then and goes. Callers are
  served in the order they asked, across processes; within a process waiters queue FIFO and
  only the head talks to Redis, holding places in the shared schedule up to ``horizon``
  seconds ahead (and at most ``lookahead``), so processes with work get equal shares.
  Requests never exceed ``rpm`` in any sliding ``period`` (plus a margin for network
  jitter), from the very first one.
- **Concurrency** across processes uses leases: a sorted set of lease ids scored by expiry.
  A finished request removes its lease; a crashed process's leases expire after
  ``lease_ttl``. A caller blocked only by concurrency re-checks when a local request
  finishes or after ``poll_interval``.
- **Releases and feedback** are recorded synchronously in the task that releases (a
  permit's exit, ``pause``, ``observe``; none of these awaits) and travel with this
  process's next script call: the local head's, else a short-lived flusher task's, retried
  with backoff while Redis is away. Leaving a permit never waits for Redis.
- **Redis trouble never holds a caller past its deadline.** Every call is bounded by the
  library's socket timeout and by the caller's own cancel scopes (it is not shielded). A
  call whose outcome is unknown (timed out, cancelled, frozen server) is withdrawn by lease
  id in the next call; the script gives the admission back if it was granted and refuses it
  if it runs later. Batches of updates carry an id applied once. After a failure, callers
  do not queue behind the next attempt: for ``outage_retry`` seconds they are answered at
  once by ``on_redis_error``: ``"refuse"`` (default: :class:`~asyncllm.LimiterUnavailable`,
  fail closed) or ``"allow"`` (admitted without the shared check; one warning per outage).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import ConfigurationError, LimiterUnavailable
from .._redis_client import (
    REDIS_CONNECT_TIMEOUT,
    REDIS_SOCKET_TIMEOUT,
    check_error_policy,
)
from .._types import RateLimitInfo, Usage
from ._common import add_totals, check_tokens, statistics_head, usage_tokens
from ._config import RateLimit
from ._redis_lane import RedisLane
from ._redis_store import RedisStore

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisRateLimiter"]

_MIN_SLEEP = 0.001
_FOREVER = 1e12  # "no deadline", as a number Lua can read


class RedisPermit:
    """One admission from a shared budget; see ``RatePermit`` for the contract."""

    __slots__ = ("_entered", "_lease", "_limiter", "_model", "_used", "tokens", "waited")

    def __init__(self, limiter: RedisRateLimiter, tokens: int, model: str) -> None:
        self._limiter = limiter
        self._model = model
        self._entered = False
        self._lease = ""  # empty: admitted without Redis (on_redis_error="allow")
        self._used: int | None = None
        self.tokens = tokens
        self.waited = 0.0

    @property
    def model(self) -> str:
        """Model the permit was taken for."""
        return self._model

    def settle(self, usage: Usage | None) -> None:
        """Record the real usage; the difference is settled in Redis on exit."""
        self._used = None if usage is None else usage_tokens(usage)

    async def __aenter__(self) -> RedisPermit:
        if self._entered:
            raise RuntimeError("a RedisPermit can be entered only once")
        self._lease, self.waited = await self._limiter._acquire(self.tokens, self._model)
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # No await: the release is recorded here and sent by the lane (see the module doc).
        if self._entered:
            self._entered = False
            delta = 0 if self._used is None else self._used - self.tokens
            self._limiter._exit(self._model, self._lease, delta)


class RedisRateLimiter(RedisStore):
    """A rate limiter whose budget lives in Redis; implements ``asyncllm._hooks.Limiter``.

    Args:
        rpm: As in ``RateLimit``.
        tpm: As in ``RateLimit``.
        max_concurrency: As in ``RateLimit``.
        period: As in ``RateLimit``.
        per_model: As in ``RateLimit``.
        burst: As in ``RateLimit``.
        url: Redis URL (``redis://host:6379/0``). Either this or ``client``.
        client: An existing ``redis.asyncio.Redis`` (not closed by :meth:`aclose`).
        key: Name of the shared budget; every process sharing the API key uses the same.
        lease_ttl: Seconds before a crashed process's concurrency slot is reclaimed.
        poll_interval: Longest sleep when blocked on concurrency held by other processes.
        jitter: Random extra sleep when blocked on concurrency, as a fraction of the wait.
        window_margin: Extra seconds added to ``period`` for the strict sliding window of
            ``rpm`` requests (absorbs network jitter); see ``RateLimit.strict_window``.
        lookahead: Most admissions of this process scheduled ahead of their start.
        horizon: How far ahead (seconds) this process keeps asking for starts; beyond it,
            it holds its place (one start at least) until the schedule comes closer.
        on_redis_error: ``"refuse"`` (fail closed) or ``"allow"`` (fail open, logged).
        outage_retry: Seconds after a Redis failure before the next caller tries Redis again.
        call_timeout: Longest one Redis call may take, connecting included (default: the
            library's connect plus socket timeouts).
        name: Label for statistics.
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        max_concurrency: int | None = None,
        period: float = 60.0,
        per_model: bool = False,
        burst: float = 0.5,
        *,
        url: str | None = None,
        client: Redis | None = None,
        key: str,
        lease_ttl: float = 600.0,
        poll_interval: float = 0.05,
        jitter: float = 0.1,
        window_margin: float | None = None,
        lookahead: int = 16,
        horizon: float = 0.25,
        on_redis_error: str = "refuse",
        outage_retry: float = 0.5,
        call_timeout: float = REDIS_CONNECT_TIMEOUT + REDIS_SOCKET_TIMEOUT,
        name: str = "",
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("RedisRateLimiter needs exactly one of url= or client=")
        if not (poll_interval > 0 and 0 <= jitter <= 1 and outage_retry > 0 and call_timeout > 0):
            raise ConfigurationError(
                "poll_interval, outage_retry and call_timeout must be > 0 and jitter in [0, 1]"
            )
        if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 1:
            raise ConfigurationError(f"lookahead must be an integer >= 1, got {lookahead!r}")
        if not horizon >= 0:
            raise ConfigurationError(f"horizon must be >= 0 seconds, got {horizon!r}")
        self.policy = check_error_policy(on_redis_error, where="RedisRateLimiter")
        self.config = c = RateLimit(
            rpm=rpm, tpm=tpm, max_concurrency=max_concurrency, period=period,
            per_model=per_model, burst=burst, redis_url=url, redis_key=key, lease_ttl=lease_ttl,
            window_margin=window_margin, on_redis_error=on_redis_error,
        )  # fmt: skip
        self.name = name
        self._client = client
        self._owns_client = client is None
        self._script: AsyncScript | None = None
        self._poll, self._jitter = poll_interval, jitter
        self._lookahead, self._horizon = lookahead, horizon
        self._outage_retry, self._call_timeout = outage_retry, call_timeout
        self._down_until = -math.inf  # monotonic: callers are answered by the policy until
        self._outages = 0
        self._lanes: dict[str, RedisLane] = {}
        self._caps = (
            0.0 if c.rpm is None else c.rpm * c.burst,
            0.0 if c.rpm is None else c.rpm / c.period,
            0.0 if c.tpm is None else c.tpm * c.burst,
            0.0 if c.tpm is None else c.tpm / c.period,
            c.max_concurrency or 0,
        )
        rpm_window = 0 if c.rpm is None else max(1, math.floor(c.rpm))
        # The constant head of the script's numeric arguments, formatted once.
        self._const = " ".join(
            repr(float(x)) for x in (*self._caps, c.lease_ttl, c.strict_window, rpm_window)
        )

    @classmethod
    def from_config(
        cls, config: RateLimit, *, client: Redis | None = None, name: str = "", **kw: Any
    ) -> RedisRateLimiter:
        """Build from a :class:`RateLimit` with ``redis_url`` (or ``client``) and ``redis_key``.

        Extra keywords (``on_redis_error``, ``lookahead``...) go to the constructor.
        """
        if config.redis_key is None:
            raise ConfigurationError("a shared (Redis) rate limit needs redis_key")
        return cls(
            config.rpm, config.tpm, config.max_concurrency, config.period, config.per_model,
            config.burst, url=None if client is not None else config.redis_url, client=client,
            key=config.redis_key, lease_ttl=config.lease_ttl, name=name,
            window_margin=config.window_margin, on_redis_error=config.on_redis_error, **kw,
        )  # fmt: skip

    # -- acquire / release -------------------------------------------------------------------

    async def _acquire(self, tokens: int, model: str) -> tuple[str, float]:
        lane = self._lane(model)
        loop = asyncio.get_running_loop()
        started = loop.time()
        lease: str | None = None
        while lease is None:
            if self._down_until > time.monotonic():
                lease = self._unavailable(lane)
                break
            turn = lane.join(loop)
            if turn is not None:
                try:
                    await turn
                except asyncio.CancelledError:
                    if not turn.cancelled():  # made head, then cancelled: pass it on
                        lane.pass_on()
                    raise
            try:
                lease = await self._as_head(lane, tokens)
            except LimiterUnavailable:
                if self.policy == "refuse":
                    raise
                lease = self._unavailable(lane)
            finally:
                self._flush_soon(lane)
        waited = loop.time() - started
        lane.record(waited)
        return lease, waited

    async def _as_head(self, lane: RedisLane, tokens: int) -> str | None:
        """The head's turn: ask until granted (returns the lease) or told to wait beyond
        the caller's deadline (returns ``None`` after sleeping; the caller queues again).
        Always hands the head on."""
        handed_on = False
        try:
            while True:
                if self._down_until > time.monotonic():
                    raise LimiterUnavailable(self.name or str(self.config.redis_key), "outage")
                deadline = anyio.current_effective_deadline()
                max_wait = _FOREVER if math.isinf(deadline) else deadline - anyio.current_time()
                if time.monotonic() + max_wait < lane.full_until:
                    # A moment ago nobody could start before this deadline: don't ask.
                    lane.pass_on()
                    handed_on = True
                    await anyio.sleep(max_wait)
                    return None
                lease = uuid.uuid4().hex
                reply = await self._call(lane, "acquire", tokens, lease, max(0.0, max_wait))
                if reply["granted"]:
                    lane.in_flight += 1
                    if reply["wait"] > 0:
                        handed_on = True
                        local = reply["server_time"] + reply["wait"] + lane.offset
                        await self._until_start(lane, local - time.monotonic(), lease, tokens)
                    return lease
                if not reply["concurrency_blocked"]:  # would start after the deadline
                    lane.full_until = time.monotonic() + reply["wait"]
                    lane.pass_on()
                    handed_on = True
                    await anyio.sleep(reply["wait"])  # the deadline comes first
                    return None
                await self._sleep_blocked(lane, reply["wait"])
        finally:
            if not handed_on:
                lane.pass_on()

    async def _until_start(self, lane: RedisLane, wait: float, lease: str, tokens: int) -> None:
        """Sleep until a granted start. The head is handed on at once while this process
        holds at most ``lookahead`` starts, reaching at most ``horizon`` seconds ahead;
        otherwise when that becomes true (so each process keeps about ``horizon`` seconds
        of the shared schedule, and at least one start)."""
        loop = asyncio.get_running_loop()
        start = loop.time() + wait
        lane.ahead += 1
        passed = False
        try:
            while (now := loop.time()) < start:
                if lane.ahead > self._lookahead:  # wait for an earlier one to start
                    freed = lane.ahead_freed = anyio.Event()
                    with anyio.move_on_after(start - now):
                        await freed.wait()
                elif start - now > self._horizon:  # far enough ahead already
                    await anyio.sleep(start - now - self._horizon)
                else:
                    break
            lane.pass_on()
            passed = True
            await anyio.sleep(max(0.0, start - loop.time()))
        except BaseException:
            # Cancelled before its start: the admission goes back (nothing was sent).
            if not passed:
                lane.pass_on()
            self._release(lane, lease, 0, withdraw=tokens)
            raise
        finally:
            lane.freed_ahead()

    async def _sleep_blocked(self, lane: RedisLane, wait: float) -> None:
        """Blocked on concurrency: sleep until woken by a local release, or poll."""
        if lane.unsent():  # releases arrived during the call: send them (and retry) now
            return
        wait = max(_MIN_SLEEP, min(wait, self._poll) * (1.0 + random.random() * self._jitter))
        kick = lane.kick = anyio.Event()
        try:
            with anyio.move_on_after(wait):
                await kick.wait()
        finally:
            lane.kick = None

    def _release(self, lane: RedisLane, lease: str, delta: int, *, withdraw: int = -1) -> None:
        """Record a release (no await, so it cannot be interrupted); the lane sends it."""
        lane.in_flight -= 1
        if not lease:  # admitted while Redis was away: nothing to give back there
            return
        p = lane.pending
        if withdraw >= 0:
            p.items.append(f"u{lease} {withdraw}")
        else:
            p.delta += delta
            if self._caps[4]:
                p.items.append(f"d{lease}")
        lane.wake_head()
        self._flush_soon(lane)

    def _exit(self, model: str, lease: str, delta: int) -> None:
        """A permit's exit: record the release; a head or the flusher sends it."""
        self._release(self._lane(model), lease, delta)

    # -- Limiter protocol --------------------------------------------------------------------

    def acquire(self, tokens: int, *, model: str) -> RedisPermit:
        """Wait for a request slot, ``tokens`` and a concurrency slot from the shared budget.

        Raises:
            InvalidRequestError: if ``tokens`` is not an integer >= 0.
            LimiterUnavailable: on entry, when Redis cannot be reached and
                ``on_redis_error="refuse"`` (the default).
        """
        return RedisPermit(self, check_tokens(tokens), model)

    def pause(self, seconds: float, *, model: str) -> None:
        """A 429: pause every process sharing the budget (sent with the next Redis call)."""
        lane = self._lane(model)
        lane.rate_limited += 1
        p = lane.pending
        p.pause_until = max(p.pause_until, time.monotonic() + max(0.0, seconds))
        lane.wake_head()
        self._flush_soon(lane)

    def observe(self, info: RateLimitInfo, *, model: str, age: float = 0.0) -> None:
        """Lower the shared room to what the headers say (same rule as ``RateLimiter``)."""
        lane = self._lane(model)
        now = time.monotonic()
        seen_at = now - max(0.0, age)
        if age > self.config.period or seen_at < lane.last_header_at:
            return
        lane.last_header_at = seen_at
        rooms = lane.pending.rooms
        for dim, remaining, rate in (
            ("requests", info.remaining_requests, self._caps[1]),
            ("tokens", info.remaining_tokens, self._caps[3]),
        ):
            if remaining is not None and rate:
                room = remaining + rate * max(0.0, age)
                old = rooms.get(dim)
                if old is None or room < old[0] + rate * (now - old[1]):
                    rooms[dim] = (room, now)

    def statistics(self) -> dict[str, Any]:
        """Local waiters, wait times, Redis calls and 429s; shared levels as of the last reply.

        Shared figures (``requests_level``, ``tokens_level``, ``in_flight_shared``,
        ``paused_for``, ``rate_limited_shared``) come from the last script reply; call
        :meth:`fetch_statistics` for fresh ones. Per key under ``"models"``; without
        ``per_model`` the single key's figures are also at the top level. ``fail_open``
        counts admissions made without Redis (``on_redis_error="allow"``), ``outages`` the
        times Redis became unreachable.
        """
        per = {k: lane.statistics() for k, lane in self._lanes.items()}
        out = statistics_head(self.name, "redis", self.config)
        keys = ("waiting", "in_flight", "acquired", "wait_time_total", "rate_limited",
                "fail_open", "redis_calls")  # fmt: skip
        add_totals(out, per, keys)
        if not self.config.per_model and "*" in per:
            out = per["*"] | out
        out["on_redis_error"] = self.policy
        out["outages"] = self._outages
        out["models"] = per
        return out

    async def fetch_statistics(self, *models: str) -> dict[str, Any]:
        """Read the shared levels from Redis (for ``models``, default: all used so far),
        sending any pending updates, then return :meth:`statistics`.

        Raises:
            LimiterUnavailable: when Redis cannot be reached.
        """
        for model in models:
            self._lane(model)
        for lane in list(self._lanes.values()):
            await self._call(lane, "flush")
            while lane.unsent():
                await self._call(lane, "flush")
        return self.statistics()

    async def aclose(self) -> None:
        """Send what is still unsent (bounded by ``call_timeout``), stop the flushers, and
        close the Redis connection pool if this limiter created it."""
        with anyio.CancelScope(shield=True):
            for lane in self._lanes.values():
                task, lane.flusher = lane.flusher, None
                if task is not None:
                    task.cancel()
                    with anyio.move_on_after(self._call_timeout):
                        await asyncio.gather(task, return_exceptions=True)
                with anyio.move_on_after(self._call_timeout):
                    while lane.unsent() and self._down_until < time.monotonic():
                        try:
                            await self._call(lane, "flush")
                        except LimiterUnavailable:
                            break
            if self._owns_client and self._client is not None:
                client, self._client, self._script = self._client, None, None
                await client.aclose()

    async def __aenter__(self) -> RedisRateLimiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"RedisRateLimiter(name={self.name!r}, key={c.redis_key!r}, rpm={c.rpm}, "
            f"tpm={c.tpm}, max_concurrency={c.max_concurrency}, period={c.period})"
        )
