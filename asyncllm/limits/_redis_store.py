"""The Redis side of ``RedisRateLimiter``: one script call, outages, and the update flusher.

:class:`RedisStore` is the base class the limiter builds on: it owns the client and the
per-key lanes, makes each script call (bounded by ``call_timeout`` and the caller's cancel
scopes; an unknown outcome is withdrawn or resent idempotently), tracks an outage (one
warning per outage, callers answered at once by the policy until ``outage_retry`` has
passed) and sends recorded updates when no caller is asking (the flusher).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

from .._exceptions import LimiterUnavailable
from .._logging import get_logger
from .._redis_client import RedisErrorPolicy, redis_from_url
from ._config import RateLimit
from ._lua import LIMITER_LUA
from ._redis_lane import RedisLane

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisStore"]

_log = get_logger("asyncllm.limits")


def _store_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the Redis store could not be used (down, slow, refusing)."""
    if isinstance(exc, (OSError, TimeoutError)):  # socket errors, our call timeout
        return True
    from redis.exceptions import RedisError  # imported already: a script call was made

    return isinstance(exc, RedisError)


class RedisStore:
    """Client, lanes, script calls and outage state of a shared limiter (a base class)."""

    config: RateLimit
    name: str
    policy: RedisErrorPolicy
    _client: Redis | None
    _owns_client: bool
    _script: AsyncScript | None
    _lanes: dict[str, RedisLane]
    _caps: tuple[float, float, float, float, int]
    _const: str
    _down_until: float
    _outages: int
    _outage_retry: float
    _call_timeout: float

    def _redis(self) -> AsyncScript:
        if self._script is None:
            if self._client is None:
                assert self.config.redis_url is not None
                self._client = redis_from_url(self.config.redis_url)
            self._script = self._client.register_script(LIMITER_LUA)
        return self._script

    def _lane(self, model: str) -> RedisLane:
        key = model if self.config.per_model else "*"
        lane = self._lanes.get(key)
        if lane is None:
            base = self.config.redis_key if key == "*" else f"{self.config.redis_key}:{key}"
            tag = f"asyncllm:rl:{{{base}}}"  # hash tag: all keys in one cluster slot
            keys = (f"{tag}:state", f"{tag}:leases", f"{tag}:grants", f"{tag}:seen")
            lane = self._lanes[key] = RedisLane(keys)
        return lane

    async def _call(
        self, lane: RedisLane, op: str, amount: int = 0, lease: str = "", max_wait: float = 0.0
    ) -> dict[str, Any]:
        """One script step, carrying one batch of this process's updates for the key.

        Not shielded: the caller's cancel scopes and ``call_timeout`` bound it. If it fails
        or is cancelled, its batch is kept (same id) and an ``acquire`` is withdrawn.
        """
        batch = lane.take_batch()
        now = time.monotonic()
        rooms = []
        for dim, rate in (("requests", self._caps[1]), ("tokens", self._caps[3])):
            seen = batch.rooms.get(dim)
            rooms.append(-1.0 if seen is None else seen[0] + rate * (now - seen[1]))
        pause = max(0.0, batch.pause_until - now)
        numbers = (
            f"{self._const} {max_wait!r} {pause!r} {rooms[0]!r} {rooms[1]!r} {amount} {batch.delta}"
        )
        bid = batch.seal() if batch else ""
        lane.calls += 1
        try:
            async with asyncio.timeout(self._call_timeout):  # cheaper than an anyio scope
                raw = await self._redis()(
                    keys=lane.keys, args=(op, numbers, bid, lease, *batch.items)
                )
        except BaseException as exc:
            lane.give_back(batch)
            if op == "acquire":  # granted or not, unknown: withdraw it by its lease id
                lane.pending.items.append(f"u{lease} {amount}")
            if _store_error(exc):
                self._went_down(exc)
                raise LimiterUnavailable(
                    self.name or str(self.config.redis_key), type(exc).__name__
                ) from exc
            raise
        # The server's clock against ours: the smallest (receipt - server time) seen is the
        # least delayed reply; a start is slept to on that, not on this reply's own delay
        # (a late reply would shift starts and bunch them at the server's window edge).
        offset = time.monotonic() - float(raw.rsplit(None, 1)[1])
        if offset < lane.offset:
            lane.offset = offset
        else:
            lane.offset += 0.01 * (offset - lane.offset)  # follow clock steps, slowly
        if self._down_until > -math.inf:
            self._down_until = -math.inf
            _log.info("redis_limiter_recovered", limiter=self.name or self.config.redis_key)
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
            "server_time": float(f[8]),
        }
        lane.reply = reply
        return reply

    def _went_down(self, exc: BaseException) -> None:
        if self._down_until == -math.inf:  # once per outage, not per request
            self._outages += 1
            _log.warning(
                "redis_limiter_unavailable", limiter=self.name or self.config.redis_key,
                reason=type(exc).__name__, on_redis_error=self.policy,
            )  # fmt: skip
        self._down_until = time.monotonic() + self._outage_retry

    def _unavailable(self, lane: RedisLane) -> str:
        """Answer a caller while Redis is down: refuse, or admit without a lease."""
        if self.policy == "refuse":
            raise LimiterUnavailable(self.name or str(self.config.redis_key), "outage")
        lane.fail_open += 1
        lane.in_flight += 1
        return ""

    def _flush_soon(self, lane: RedisLane) -> None:
        """Make sure what is recorded reaches Redis even if no caller asks again."""
        if lane.unsent() and lane.flusher is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (feedback recorded from sync code): next call
                return
            lane.flusher = loop.create_task(self._flush(lane))

    async def _flush(self, lane: RedisLane) -> None:
        # With a head asking, wait a moment: its next call carries the updates for free.
        delay = 0.005 if lane.head_busy else 0.0
        try:
            while lane.unsent():
                pause = max(delay, self._down_until - time.monotonic())
                if pause > 0:
                    await asyncio.sleep(pause)
                    if not lane.unsent():
                        break
                try:
                    await self._call(lane, "flush")
                    delay = 0.005
                except LimiterUnavailable:
                    delay = min(2.0, max(0.05, delay * 2))
        finally:
            lane.flusher = None
