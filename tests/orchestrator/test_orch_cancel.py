"""Caller cancellation at every stage leaves no task, stream, permit or reservation behind."""

from __future__ import annotations

import anyio
import pytest
from _orchfakes import RecordingBudget, RecordingLimiter, other_tasks

from asyncllm import Client, RateLimited, ServerError
from asyncllm.orchestrator import Hedge, RetryPolicy
from asyncllm.orchestrator._policy import StrategyLike
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

TOKENS = tuple(f"t{i} " for i in range(10))


def providers() -> tuple[FakeProvider, FakeProvider]:
    # a: fails at 0.2 s, then answers slowly. b: headers at 0.3 s, then a token per 0.1 s.
    a = FakeProvider(
        "a",
        replies=[
            FakeReply(latency=0.2, error=ServerError("down")),
            FakeReply(tokens=TOKENS, latency=0.5, token_delay=0.1),
        ],
    )
    b = FakeProvider("b", replies=[FakeReply(tokens=TOKENS, latency=0.3, token_delay=0.1)])
    return a, b


@pytest.mark.parametrize("strategy", ["fallback", "race", "hedge"])
@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("cancel_at", [0.0, 0.1, 0.25, 0.45, 0.8, 1.3, 9.0])
async def test_cancel_at_any_stage(strategy: str, mode: str, cancel_at: float) -> None:
    a, b = providers()
    limiters = {"a": RecordingLimiter(), "b": RecordingLimiter()}
    budget = RecordingBudget()
    chosen: StrategyLike = Hedge(delay=0.1, burst=10) if strategy == "hedge" else "fallback"
    if strategy == "race":
        chosen = "race"
    retry = RetryPolicy(base_delay=0.3)
    async with Client(
        [a, b],
        strategy=chosen,
        limits=limiters,
        budget=budget,
        retry=retry,
        log=False,
    ) as client:
        finished = False
        with anyio.move_on_after(cancel_at):
            if mode == "complete":
                await client.complete("hi")
            else:
                async with client.stream("hi") as s:
                    async for _ in s:
                        await anyio.sleep(0.01)
            finished = True
        if cancel_at == 9.0 or cancel_at <= 0.1:
            assert finished == (cancel_at == 9.0)
        assert not other_tasks()
        assert a.open_streams == b.open_streams == 0
        assert limiters["a"].in_use == limiters["b"].in_use == 0
        assert budget.open == 0
        started = a.started + b.started
        assert (
            a.completed + b.completed + a.cancelled + b.cancelled + a.failed + b.failed == started
        )


async def test_cancel_while_waiting_for_the_limiter_takes_nothing() -> None:
    a = FakeProvider("a")
    limiter = RecordingLimiter(concurrency=1)
    assert limiter.semaphore is not None
    await limiter.semaphore.acquire()  # the only slot is taken
    budget = RecordingBudget()
    async with Client(a, limits={"a": limiter}, budget=budget, log=False) as client:
        with anyio.move_on_after(1.0):
            await client.complete("hi")
    assert a.calls == []
    assert limiter.in_use == 0
    assert budget.reservations[0].settled == [0.0]  # never sent: nothing spent
    assert budget.open == 0
    assert not other_tasks()


async def test_cancel_during_backoff() -> None:
    a = FakeProvider("a", replies=[RateLimited("429", retry_after=10.0), "ok"])
    async with Client(a, log=False) as client:  # waits the 10 s Retry-After
        with anyio.move_on_after(0.5) as scope:
            await client.complete("hi")
    assert scope.cancelled_caught
    assert len(a.calls) == 1
    assert not other_tasks()
