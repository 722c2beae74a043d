"""The in-process rate limiter: requests, tokens and concurrency through one FIFO queue.

A request waits until it has a request slot, its token reservation and a concurrency slot,
all at once, in arrival order. Afterwards ``permit.settle(usage)`` reconciles the token
reservation with what the provider really counted, and leaving the ``async with`` frees
the concurrency slot and gives back the unused tokens.

Header correction rule (``observe``): rate-limit headers only ever *lower* the room the
limiter thinks is left, never raise it (one response cannot see requests still in flight,
and trusting a high ``remaining`` is how 429 storms start). Headers describe the moment the
provider admitted that request, so a reading ``age`` seconds old is credited with what the
provider refilled since (``remaining + rate * age``); a reading older than one period, or
older than a reading already applied (responses finishing out of order), is ignored. Call
``observe`` as soon as the headers arrive (stream open), or pass ``age=``.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from .._types import RateLimitInfo, Usage
from ._common import Clock, add_totals, check_tokens, default_now, statistics_head, usage_tokens
from ._config import RateLimit
from ._lane import Lane, Waiter

__all__ = ["RateLimiter", "RatePermit"]

_SHARED = "*"
#: The per-model figures summed for a ``per_model`` limiter's totals.
_TOTALS = (
    "waiting",
    "in_flight",
    "acquired",
    "wait_time_total",
    "rate_limited",
    "tokens_reserved",
    "tokens_refunded",
    "tokens_extra_charged",
)


class RatePermit:
    """One admission: an async context manager that waits in ``__aenter__``.

    Attributes:
        tokens: Tokens reserved.
        model: Model the permit was taken for.
        waited: Seconds spent waiting for admission.
    """

    #: ``__aexit__`` never suspends (the orchestrator needs no shield scope to release it).
    sync_exit = True

    __slots__ = ("_entered", "_lane", "_used", "model", "tokens", "waited")

    def __init__(self, lane: Lane, tokens: int, model: str) -> None:
        self._lane = lane
        self._entered = False
        self._used: int | None = None
        self.tokens = tokens
        self.model = model
        self.waited = 0.0

    def settle(self, usage: Usage | None) -> None:
        """Record the real usage; the difference to the reservation is settled on exit.

        ``None`` (unknown usage) keeps the whole reservation spent.
        """
        self._used = None if usage is None else usage_tokens(usage)

    async def __aenter__(self) -> RatePermit:
        if self._entered:
            raise RuntimeError("a RatePermit can be entered only once")
        lane = self._lane
        now = lane.clock()
        if not lane.waiting and not lane.delay(self.tokens, now):
            # Fast path: nobody queued and everything fits; no future, no context switch.
            lane.admit(self.tokens)
            self._entered = True
            return self
        waiter = Waiter(asyncio.get_running_loop().create_future(), self.tokens, now)
        lane.enqueue(waiter)
        try:
            admitted_at = await waiter.fut
        except asyncio.CancelledError:
            if waiter.fut.cancelled():
                lane.withdraw(waiter)
            else:
                # Admitted, then cancelled before this task resumed: nothing was sent, so
                # everything goes back (request slot included).
                lane.undo(self.tokens)
            raise
        self.waited = admitted_at - now
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # No await here: the release cannot be interrupted by cancellation.
        if self._entered:
            self._entered = False
            self._lane.release(self.tokens, self._used)


class RateLimiter:
    """In-process limiter for one provider; implements ``asyncllm._hooks.Limiter``.

    Example::

        limiter = RateLimiter(rpm=500, tpm=200_000, max_concurrency=32)
        async with limiter.acquire(est_tokens, model="gpt-4o-mini") as permit:
            response = await call()
            permit.settle(response.usage)

    Args:
        rpm: Requests per ``period``.
        tpm: Tokens per ``period``.
        max_concurrency: Most requests in flight.
        period: Seconds per limit period.
        per_model: Separate buckets per model.
        burst: Fraction of a period's limit that may go at once (see ``RateLimit``).
        clock: Seconds as a float; defaults to the running loop's ``time()`` (which
            ``looptime`` fakes in tests), or ``time.monotonic`` outside a loop. Timers are
            armed on the event loop with ``call_later`` using delays from this clock.
        name: Label for statistics and logs (usually the provider name).
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
        clock: Clock | None = None,
        name: str = "",
    ) -> None:
        self._init(
            RateLimit(
                rpm=rpm,
                tpm=tpm,
                max_concurrency=max_concurrency,
                period=period,
                per_model=per_model,
                burst=burst,
            ),
            clock,
            name,
        )

    def _init(self, config: RateLimit, clock: Clock | None, name: str) -> None:
        self.config = config
        self.name = name
        self._clock: Clock = clock or default_now
        self._lanes: dict[str, Lane] = {}

    @classmethod
    def from_config(
        cls, config: RateLimit, *, clock: Clock | None = None, name: str = ""
    ) -> RateLimiter:
        """Build from a :class:`RateLimit` (its Redis settings are ignored here)."""
        self = cls.__new__(cls)
        self._init(config, clock, name)
        return self

    def _lane(self, model: str) -> Lane:
        key = model if self.config.per_model else _SHARED
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(self.config, self._clock)
        return lane

    def acquire(self, tokens: int, *, model: str) -> RatePermit:
        """Wait (FIFO) for a request slot, ``tokens`` of token budget and a concurrency slot.

        Returns an async context manager; entering waits, leaving frees the concurrency
        slot and settles the tokens. Cancelled while waiting, it takes nothing.

        Raises:
            InvalidRequestError: if ``tokens`` is not an integer >= 0.
        """
        return RatePermit(self._lane(model), check_tokens(tokens), model)

    def observe(self, info: RateLimitInfo, *, model: str, age: float = 0.0) -> None:
        """Correct the levels from rate-limit headers received ``age`` seconds ago.

        Only lowers the room left; see the module docstring for the rule.
        """
        self._lane(model).observe(info, age)

    def pause(self, seconds: float, *, model: str) -> None:
        """A 429 said to wait: no waiter (of this model's lane) starts for ``seconds``."""
        self._lane(model).pause(seconds)

    def statistics(self) -> dict[str, Any]:
        """Waiters, wait times, levels, in-flight, 429s seen and pause, summed over models.

        With ``per_model=True`` the per-model figures are under ``"models"``.
        """
        per = {k: lane.statistics() for k, lane in self._lanes.items()}
        out = statistics_head(self.name, "memory", self.config)
        if not self.config.per_model:
            out.update(per.get(_SHARED) or Lane(self.config, self._clock).statistics())
            return out
        add_totals(out, per, _TOTALS)
        out["wait_time_max"] = max((s["wait_time_max"] for s in per.values()), default=0.0)
        out["models"] = per
        return out

    def __repr__(self) -> str:
        c = self.config
        return (
            f"RateLimiter(name={self.name!r}, rpm={c.rpm}, tpm={c.tpm}, "
            f"max_concurrency={c.max_concurrency}, period={c.period})"
        )
