"""One admission seam (``orchestrator/_admission.py``) for complete and stream alike.

Breaker, budget reservation and limiter permit are taken in that order and given back in
reverse, and what is booked (the real usage and cost, or "nothing used" / "unknown") is
the same whether the attempt was a ``complete`` or a ``stream``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _orchfakes import FixedPricing, RecordingBudget, RecordingLimiter

from asyncllm import AllProvidersFailed, BudgetExceeded, Client, ServerError
from asyncllm.orchestrator import RetryPolicy
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime


async def _run(stream: bool, replies: list[Any]) -> tuple[list[Any], list[Any], Any]:
    limiter, budget = RecordingLimiter(), RecordingBudget()
    provider = FakeProvider("a", replies=replies)
    async with Client(
        provider,
        limits={"a": limiter},
        budget=budget,
        pricing=FixedPricing(),
        retry=RetryPolicy(max_attempts=1),
        log=False,
    ) as client:
        try:
            if stream:
                async with client.stream("hi") as s:
                    async for _ in s:
                        pass
                outcome: Any = s.response
            else:
                outcome = await client.complete("hi")
        except Exception as exc:
            outcome = exc
    return limiter.events, budget.events, outcome


@pytest.mark.parametrize(
    "replies",
    [
        [FakeReply(tokens=("a", "b"))],  # answered: real usage and cost booked
        [ServerError("boom")],  # an error status at open: nothing used, nothing billed
        [FakeReply(tokens=("a", "b"), error=ServerError("cut"), fail_after=1)],  # unknown
    ],
    ids=["answered", "error-at-open", "cut-mid-answer"],
)
async def test_complete_and_stream_take_and_book_the_same_way(replies: list[Any]) -> None:
    lim_c, bud_c, out_c = await _run(False, list(replies))
    lim_s, bud_s, out_s = await _run(True, list(replies))
    # Budget first, then the limiter; given back in reverse; the same bookings.
    assert bud_c[0][0] == "reserve" and lim_c[0][0] == "acquire"
    assert lim_c[-1] == ("release",) and bud_c[-1] == ("release",)
    assert [e[0] for e in lim_c] == [e[0] for e in lim_s]
    assert [e[0] for e in bud_c] == [e[0] for e in bud_s]
    settle_c = [e[1] for e in bud_c if e[0] == "settle"]
    settle_s = [e[1] for e in bud_s if e[0] == "settle"]
    assert len(settle_c) == len(settle_s) == 1
    assert isinstance(out_c, Exception) == isinstance(out_s, Exception)
    if isinstance(out_c, Exception):
        assert isinstance(out_c, (ServerError, AllProvidersFailed))
        assert settle_c == settle_s  # 0.0 (nothing used) or None (unknown), alike
    else:
        assert settle_c[0] == pytest.approx(settle_s[0]) and settle_c[0] > 0
        assert out_c.text == out_s.text == "ab"


async def test_a_refused_reservation_takes_no_permit() -> None:
    limiter, budget = RecordingLimiter(), RecordingBudget(refuse=BudgetExceeded("b", 1.0, 0.0))
    async with Client(FakeProvider("a"), limits={"a": limiter}, budget=budget, log=False) as client:
        with pytest.raises(BudgetExceeded):
            await client.complete("hi")
        with pytest.raises(BudgetExceeded):
            async with client.stream("hi") as s:
                async for _ in s:
                    pass
    assert limiter.events == [] and budget.open == 0


class SlowExitLimiter:
    """A limiter whose permit waits on leaving (like a network round trip)."""

    def __init__(self) -> None:
        self.released = 0

    def acquire(self, tokens: int, *, model: str) -> Any:
        return _SlowPermit(self)

    def observe(self, info: Any, *, model: str) -> None:
        pass

    def pause(self, seconds: float, *, model: str) -> None:
        pass

    def statistics(self) -> dict[str, Any]:
        return {}


class _SlowPermit:
    def __init__(self, limiter: SlowExitLimiter) -> None:
        self.limiter = limiter

    def settle(self, usage: Any) -> None:
        pass

    async def __aenter__(self) -> _SlowPermit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await anyio.sleep(1.0)  # a cancellation here would lose the release
        self.limiter.released += 1


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_release_that_waits_is_shielded_from_cancellation(stream: bool) -> None:
    limiter = SlowExitLimiter()
    provider = FakeProvider("a", replies=[FakeReply(tokens=("a",))])
    async with Client(provider, limits={"a": limiter}, log=False) as client:
        with anyio.move_on_after(0.5) as scope:  # fires while the permit is being released
            if stream:
                async with client.stream("hi") as s:
                    async for _ in s:
                        pass
            else:
                await client.complete("hi")
        assert scope.cancel_called  # the deadline came while the permit was being released
        assert limiter.released == 1  # ...and the release ran to its end all the same


async def test_in_process_permits_and_reservations_declare_an_exit_that_never_suspends() -> None:
    from asyncllm import MemoryBudget, RateLimiter
    from asyncllm._build import build_request
    from asyncllm.abc import NoBudget, NoLimiter

    request = build_request("hi", {})
    cms = [
        RateLimiter(rpm=10).acquire(1, model="m"),
        NoLimiter().acquire(1, model="m"),
        MemoryBudget(1000.0, pricing=FixedPricing()).reserve(
            request, provider="a", kind="fake", model="m", local=False
        ),
        NoBudget().reserve(request, provider="a", kind="fake", model="m", local=False),
    ]
    for cm in cms:
        assert type(cm).sync_exit is True
        await cm.__aenter__()
        # ...and it is true: driven by hand, the exit finishes at its first step.
        coro = cm.__aexit__(None, None, None)
        with pytest.raises(StopIteration):
            coro.send(None)


class _QuickPermit:
    """Declares an exit that never suspends (and keeps the promise)."""

    sync_exit = True

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    def settle(self, usage: Any) -> None:
        pass

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.limiter.released += 1


class _SlowSubclassPermit(_QuickPermit):
    """Inherits the flag but overrides the exit with one that waits: not trusted."""

    async def __aexit__(self, *exc: object) -> None:
        await anyio.sleep(1.0)
        self.limiter.released += 1


class _SubclassLimiter(SlowExitLimiter):
    def acquire(self, tokens: int, *, model: str) -> Any:
        return _SlowSubclassPermit(self)


async def test_an_inherited_sync_exit_flag_does_not_skip_the_shield() -> None:
    limiter = _SubclassLimiter()
    provider = FakeProvider("a", replies=[FakeReply(tokens=("a",))])
    async with Client(provider, limits={"a": limiter}, log=False) as client:
        with anyio.move_on_after(0.5) as scope:
            await client.complete("hi")
        assert scope.cancel_called and limiter.released == 1
