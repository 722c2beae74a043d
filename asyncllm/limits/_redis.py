"""``RedisRateLimiter``: one budget of requests, tokens and concurrency shared by processes.

Every process (or machine) that uses one API key points a ``RedisRateLimiter`` with the same
``key`` and limits at one Redis. Each admission is one atomic Lua step (``_lua.py``) on
server time, so the budget is exact no matter how many processes take from it.

Choices, and why:

- **Waiting.** A refused caller sleeps until the time the script says capacity frees up,
  plus up to ``jitter`` (10%) random extra so processes don't wake in lockstep; never less
  than 1 ms. Nothing spins. Across processes the order is first-come-at-wake-up, not FIFO;
  *within* a process waiters queue FIFO and only the head talks to Redis, so one process
  makes one round trip per admission and a large reservation is not overtaken locally.
- **Concurrency** across processes uses leases: a sorted set of lease ids scored by expiry.
  A finished request removes its lease; a crashed process's leases expire after
  ``lease_ttl`` (make it longer than your longest request). A caller blocked only by
  concurrency re-checks when a local request finishes or after ``poll_interval``.
- **Releases and feedback** are recorded synchronously in the task that releases (a
  permit's exit, ``pause``, ``observe``; none of these can be interrupted) and travel with
  this process's next script call for the key: the local head's next attempt when someone
  is waiting (woken at once if asleep), so a release costs no round trip of its own under
  load; otherwise the exiting task sends it itself, shielded from cancellation. If Redis
  is unreachable at exit, the update stays pending for the next call rather than failing a
  request that already succeeded. Other processes see a pause in their next reply.
- **Failures**: an unreachable Redis (or any Redis or socket error on the way) makes
  ``acquire`` raise :class:`~asyncllm.LimiterUnavailable`, chained to redis-py's error
  (failing closed: no request goes out unaccounted). The orchestrator does not fall over on
  it: the logical request fails with it at once, as with an unreachable budget.
- **Cost**: one round trip per admission, plus one per release when nobody waits locally.
  Each call runs in a short task behind both an anyio and an asyncio shield, so even a bare
  ``task.cancel()`` cannot leave it unknown whether a slot was granted or a refund applied.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import ConfigurationError, LimiterUnavailable
from .._types import RateLimitInfo, Usage
from ._common import add_totals, check_tokens, statistics_head, usage_tokens
from ._config import RateLimit
from ._lua import LIMITER_LUA
from ._redis_lane import RedisLane
from ._shield import run_shielded

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisRateLimiter"]

_MIN_SLEEP = 0.001


def _store_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the Redis store could not be used (down, slow, refusing)."""
    if isinstance(exc, OSError):  # socket errors (asyncio.TimeoutError is an OSError too)
        return True
    from redis.exceptions import RedisError  # imported already: a script call was made

    return isinstance(exc, RedisError)


def _reason(exc: BaseException) -> str:
    # The class name only: redis-py's messages name the host and port.
    return type(exc).__name__


class RedisPermit:
    """One admission from a shared budget; see ``RatePermit`` for the contract."""

    __slots__ = ("_lease", "_limiter", "_model", "_used", "tokens", "waited")

    def __init__(self, limiter: RedisRateLimiter, tokens: int, model: str) -> None:
        self._limiter = limiter
        self._model = model
        self._lease: str | None = None
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
        if self._lease is not None:
            raise RuntimeError("a RedisPermit can be entered only once")
        self._lease, self.waited = await self._limiter._acquire(self.tokens, self._model)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            delta = 0 if self._used is None else self._used - self.tokens
            await self._limiter._exit(self._model, lease, delta)


class RedisRateLimiter:
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
        jitter: Random extra sleep, as a fraction of the computed wait.
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
        name: str = "",
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("RedisRateLimiter needs exactly one of url= or client=")
        if not (poll_interval > 0 and 0 <= jitter <= 1):
            raise ConfigurationError("poll_interval must be > 0 and jitter in [0, 1]")
        self.config = RateLimit(
            rpm=rpm, tpm=tpm, max_concurrency=max_concurrency, period=period,
            per_model=per_model, burst=burst, redis_url=url, redis_key=key, lease_ttl=lease_ttl,
        )  # fmt: skip
        self.name = name
        self._client = client
        self._owns_client = client is None
        self._script: AsyncScript | None = None
        self._poll = poll_interval
        self._jitter = jitter
        self._lanes: dict[str, RedisLane] = {}
        c = self.config
        self._caps = (
            0.0 if c.rpm is None else c.rpm * c.burst,
            0.0 if c.rpm is None else c.rpm / c.period,
            0.0 if c.tpm is None else c.tpm * c.burst,
            0.0 if c.tpm is None else c.tpm / c.period,
            c.max_concurrency or 0,
        )
        # The constant head of the script's numeric arguments, formatted once.
        self._const = " ".join(repr(float(x)) for x in (*self._caps, c.lease_ttl))

    @classmethod
    def from_config(
        cls, config: RateLimit, *, client: Redis | None = None, name: str = ""
    ) -> RedisRateLimiter:
        """Build from a :class:`RateLimit` with ``redis_url`` (or ``client``) and ``redis_key``."""
        if config.redis_key is None:
            raise ConfigurationError("a shared (Redis) rate limit needs redis_key")
        return cls(
            config.rpm, config.tpm, config.max_concurrency, config.period, config.per_model,
            config.burst, url=None if client is not None else config.redis_url, client=client,
            key=config.redis_key, lease_ttl=config.lease_ttl, name=name,
        )  # fmt: skip

    # -- plumbing ----------------------------------------------------------------------------

    def _redis(self) -> AsyncScript:
        if self._script is None:
            if self._client is None:
                try:
                    from redis.asyncio import Redis
                except ImportError as e:  # pragma: no cover - depends on the environment
                    raise ConfigurationError(
                        "shared rate limits need redis-py: pip install 'asyncllm[redis]'"
                    ) from e
                assert self.config.redis_url is not None
                self._client = Redis.from_url(self.config.redis_url)
            self._script = self._client.register_script(LIMITER_LUA)
        return self._script

    def _lane(self, model: str) -> RedisLane:
        key = model if self.config.per_model else "*"
        lane = self._lanes.get(key)
        if lane is None:
            base = self.config.redis_key if key == "*" else f"{self.config.redis_key}:{key}"
            tag = f"asyncllm:rl:{{{base}}}"  # hash tag: both keys in one cluster slot
            lane = self._lanes[key] = RedisLane((f"{tag}:state", f"{tag}:leases"))
        return lane

    async def _call(
        self, lane: RedisLane, op: str, amount: int = 0, lease: str = ""
    ) -> dict[str, Any]:
        """One script step, carrying this process's pending updates for the key.

        If the call fails, the updates are kept for the next one.
        """
        batch = lane.take_pending()
        now = time.monotonic()
        rooms = []
        for dim, rate in (("requests", self._caps[1]), ("tokens", self._caps[3])):
            seen = batch.rooms.get(dim)
            rooms.append(-1.0 if seen is None else seen[0] + rate * (now - seen[1]))
        pause = max(0.0, batch.pause_until - now)
        numbers = (
            f"{self._const} {pause!r} {rooms[0]!r} {rooms[1]!r} {amount} {batch.delta} {batch.undo}"
        )
        try:
            raw = await self._redis()(keys=lane.keys, args=(op, numbers, lease, *batch.leases))
        except BaseException as exc:
            lane.pending.merge(batch)
            if _store_error(exc):
                raise LimiterUnavailable(
                    self.name or str(self.config.redis_key), _reason(exc)
                ) from exc
            raise
        f = raw.split()
        reply = {
            "granted": f[0] == b"1",
            "wait": float(f[1]),
            "requests_level": float(f[2]),
            "tokens_level": float(f[3]),
            "in_flight_shared": int(f[4]),
            "paused_for": float(f[5]),
            "rate_limited_shared": int(f[6]),
            "concurrency_blocked": f[7] == b"1",
        }
        lane.reply = reply
        return reply

    async def _send(self, lane: RedisLane) -> asyncio.CancelledError | None:
        """Send pending updates now, shielded; returns a cancellation that came meanwhile.

        If Redis fails, the updates stay pending for the next call (and the error is
        raised unless a cancellation is to be raised instead).
        """
        out = await run_shielded(self._call(lane, "flush"))
        if out.error is not None and out.cancelled is None:
            raise out.error
        return out.cancelled

    # -- acquire / release -------------------------------------------------------------------

    async def _acquire(self, tokens: int, model: str) -> tuple[str, float]:
        lane = self._lane(model)
        loop = asyncio.get_running_loop()
        started = loop.time()
        turn = lane.join(loop)
        if turn is not None:
            try:
                await turn
            except asyncio.CancelledError:
                if not turn.cancelled():  # made head, then cancelled: pass it on
                    lane.pass_on()
                raise
        lease = uuid.uuid4().hex
        try:
            await self._until_granted(lane, tokens, lease)
        except BaseException:
            lane.pass_on()
            if not lane.head_busy and lane.pending:
                await self._send_quietly(lane)  # an undo, or releases nobody else will carry
            raise
        lane.pass_on()
        if not lane.head_busy and lane.pending:
            cancelled = await self._send_quietly(lane)
            if cancelled is not None:  # cancelled after the grant: it goes back too
                self._release(lane, lease, -tokens, undo=True)
                await self._send_quietly(lane)
                raise cancelled
        waited = loop.time() - started
        lane.record(waited)
        return lease, waited

    async def _until_granted(self, lane: RedisLane, tokens: int, lease: str) -> None:
        """The head's loop: ask Redis, sleep until it says capacity frees up, ask again."""
        while True:
            out = await run_shielded(self._call(lane, "acquire", tokens, lease))
            reply = out.value
            if reply is not None and reply["granted"]:
                lane.in_flight += 1
                if out.cancelled is not None:  # granted, but the caller is gone: undo
                    self._release(lane, lease, -tokens, undo=True)
                    raise out.cancelled
                return
            if out.cancelled is not None:
                raise out.cancelled
            if out.error is not None:
                raise out.error
            assert reply is not None
            await self._sleep(lane, reply)

    async def _send_quietly(self, lane: RedisLane) -> asyncio.CancelledError | None:
        try:
            return await self._send(lane)
        except Exception:
            return None  # kept pending; the next call of this process retries

    async def _sleep(self, lane: RedisLane, reply: dict[str, Any]) -> None:
        """Sleep until the time Redis said (plus jitter), or until woken by a local event."""
        if lane.pending:  # releases arrived during the call: send them (and retry) now
            return
        wait = reply["wait"]
        if reply["concurrency_blocked"]:
            wait = min(wait, self._poll)
        wait = max(_MIN_SLEEP, wait * (1.0 + random.random() * self._jitter))
        kick = lane.kick = anyio.Event()
        try:
            with anyio.move_on_after(wait):
                await kick.wait()
        finally:
            lane.kick = None

    def _release(self, lane: RedisLane, lease: str, delta: int, *, undo: bool) -> None:
        """Record a release. No await, so it cannot be interrupted; it reaches Redis with
        the next call of this process (a sleeping head is woken to make it)."""
        lane.in_flight -= 1
        p = lane.pending
        p.delta += delta
        p.undo += int(undo)
        if self._caps[4]:
            p.leases.append(lease)
        lane.wake_head()

    async def _exit(self, model: str, lease: str, delta: int) -> None:
        """A permit's exit: record the release; send it now unless a local head will."""
        lane = self._lane(model)
        self._release(lane, lease, delta, undo=False)
        if not lane.head_busy and lane.pending:
            # If Redis is unreachable the update stays pending for the next call: failing
            # a finished request because its refund could not be sent would be worse.
            cancelled = await self._send_quietly(lane)
            if cancelled is not None:
                raise cancelled

    # -- Limiter protocol --------------------------------------------------------------------

    def acquire(self, tokens: int, *, model: str) -> RedisPermit:
        """Wait for a request slot, ``tokens`` and a concurrency slot from the shared budget.

        Raises:
            InvalidRequestError: if ``tokens`` is not an integer >= 0.
            LimiterUnavailable: on entry, when Redis cannot be reached (fails closed).
        """
        return RedisPermit(self, check_tokens(tokens), model)

    def pause(self, seconds: float, *, model: str) -> None:
        """A 429: pause every process sharing the budget (sent with the next Redis call)."""
        lane = self._lane(model)
        lane.rate_limited += 1
        p = lane.pending
        p.pause_until = max(p.pause_until, time.monotonic() + max(0.0, seconds))
        lane.wake_head()

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
        """Local waiters, wait times and 429s; shared levels as of the last Redis reply.

        Shared figures (``requests_level``, ``tokens_level``, ``in_flight_shared``,
        ``paused_for``, ``rate_limited_shared``) come from the last script reply; call
        :meth:`fetch_statistics` for fresh ones. Per key under ``"models"``; without
        ``per_model`` the single key's figures are also at the top level.
        """
        per = {k: lane.statistics() for k, lane in self._lanes.items()}
        out = statistics_head(self.name, "redis", self.config)
        add_totals(
            out, per, ("waiting", "in_flight", "acquired", "wait_time_total", "rate_limited")
        )
        if not self.config.per_model and "*" in per:
            out = per["*"] | out
        out["models"] = per
        return out

    async def fetch_statistics(self, *models: str) -> dict[str, Any]:
        """Read the shared levels from Redis (for ``models``, default: all used so far),
        sending any pending feedback, then return :meth:`statistics`.

        Raises:
            LimiterUnavailable: when Redis cannot be reached.
        """
        for model in models:
            self._lane(model)
        for lane in list(self._lanes.values()):
            cancelled = await self._send(lane)
            if cancelled is not None:
                raise cancelled
        return self.statistics()

    async def aclose(self) -> None:
        """Close the Redis connection pool if this limiter created it."""
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
