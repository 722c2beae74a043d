"""Acceptance predicates in the strategies: a rejected answer fails its attempt with
AnswerRejected and the strategy moves on (fallback, race, hedge); its cost is booked; the
breaker counts rejections against their own threshold (FakeProvider, looptime)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from asyncllm import (
    AllProvidersFailed,
    AnswerRejected,
    Client,
    ConfigurationError,
    MemoryBudget,
    ModelPrice,
    Prices,
    Response,
    SpendLimit,
    Usage,
)
from asyncllm.orchestrator import BreakerPolicy, Hedge, Race, RetryPolicy
from asyncllm.quality import no_refusal, not_empty, not_truncated
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

NO_RETRY = RetryPolicy(max_retries=0)
TRUNCATED = FakeReply(tokens=("cut", " short"), finish_reason="length", usage=Usage(5, 100))
GOOD = FakeReply(tokens=("a", " full", " answer"), usage=Usage(5, 3))
PRICES = Prices(
    {("a", "fake-model"): ModelPrice(1_000.0, 1_000.0), ("b", "fake-model"): ModelPrice(1.0, 1.0)}
)


def quality(client: Client, provider: str) -> dict[str, Any]:
    return client.statistics()["metrics"]["providers"][provider]["fake-model"]["quality"]


async def test_rejected_answer_falls_back_to_the_next_provider() -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[GOOD])
    async with Client([a, b], accept=not_truncated, retry=NO_RETRY, log=False) as client:
        response = await client.complete("hi")
        assert response.provider == "b" and response.text == "a full answer"
        qa, qb = quality(client, "a"), quality(client, "b")
        errors = client.statistics()["metrics"]["providers"]["a"]["fake-model"]["errors"]
        per_provider = client.statistics()["providers"]["a"]["quality"]
    assert len(a.calls) == len(b.calls) == 1
    assert qa["rejected"] == 1 and qa["rejections"] == {"truncated": 1}
    assert qa["finish_reasons"]["length"] == 1 and qa["rates"]["rejected"] == 1.0
    assert qb["rejected"] == 0 and qb["finish_reasons"]["stop"] == 1
    assert errors == {"AnswerRejected": 1}
    assert per_provider == qa  # one model: the provider's summary is that model's


async def test_a_scripted_refusal_is_rejected_by_no_refusal() -> None:
    refusal = FakeReply(
        tokens=("I can't",), finish_reason="content_filter", raw_finish_reason="refusal"
    )
    a = FakeProvider("a", replies=[refusal])
    b = FakeProvider("b", replies=[GOOD])
    async with Client([a, b], accept=no_refusal, retry=NO_RETRY, log=False) as client:
        response = await client.complete("hi")
        qa = quality(client, "a")
    assert response.provider == "b"
    assert qa["finish_reasons"]["refusal"] == 1 and qa["rejections"] == {"refusal": 1}


async def test_every_answer_rejected_raises_all_failed_with_reason_and_answer() -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[""])
    async with Client(
        [a, b], accept=[not_truncated, not_empty], retry=NO_RETRY, pricing=PRICES, log=False
    ) as client:
        with pytest.raises(AllProvidersFailed) as info:
            await client.complete("hi")
    first, second = info.value.exceptions
    assert isinstance(first, AnswerRejected) and isinstance(second, AnswerRejected)
    assert first.reason.startswith("truncated") and first.provider == "a"
    assert first.response is not None and first.response.text == "cut short"
    assert first.response.cost_usd == pytest.approx(0.105)  # 5 in + 100 out at $0.001
    assert second.reason.startswith("empty")
    assert first.retryable and info.value.retryable


async def test_a_rejected_answer_is_retried_on_the_same_provider_when_it_is_alone() -> None:
    a = FakeProvider("a", replies=[TRUNCATED, GOOD])
    retry = RetryPolicy(max_retries=1, base_delay=0.1)
    async with Client(a, accept=not_truncated, retry=retry, log=False) as client:
        response = await client.complete("hi")
    assert response.text == "a full answer" and len(a.calls) == 2


async def test_cost_of_rejected_answers_is_booked_in_budget_and_metrics() -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[GOOD])
    budget = MemoryBudget(SpendLimit(10.0), pricing=PRICES)
    async with Client(
        [a, b], accept=not_truncated, retry=NO_RETRY, budget=budget, log=False
    ) as client:
        response = await client.complete("hi")
        metrics = client.statistics()["metrics"]
    spent = sum(b["spent_usd"] for b in budget.statistics()["buckets"].values())
    rejected_cost = 105 * 0.001
    assert response.cost_usd == pytest.approx(8e-6)
    assert spent == pytest.approx(rejected_cost + 8e-6)
    assert metrics["providers"]["a"]["fake-model"]["cost_usd"] == pytest.approx(rejected_cost)
    assert metrics["providers"]["a"]["fake-model"]["tokens"]["output"] == 100
    assert metrics["totals"]["cost_usd"] == pytest.approx(rejected_cost + 8e-6)


async def test_per_call_accept_replaces_the_clients() -> None:
    a = FakeProvider("a", replies=[""])
    async with Client(a, accept=not_empty, retry=NO_RETRY, log=False) as client:
        with pytest.raises(AllProvidersFailed):
            await client.complete("hi")
        response = await client.complete("hi", accept=[])  # no checks for this call
        assert response.text == ""

        def never(r: Response) -> bool:
            return False

        with pytest.raises(AllProvidersFailed) as info:
            await client.complete("hi", accept=never)
    assert info.value.exceptions[0].reason == "rejected by never"  # type: ignore[attr-defined]


async def test_async_predicates_are_awaited() -> None:
    seen: list[str] = []

    async def judge(r: Response) -> str | None:
        await anyio.sleep(0.5)  # e.g. an evaluator model
        seen.append(r.provider)
        return "judge: too short" if len(r.text) < 5 else None

    a = FakeProvider("a", replies=["no"])
    b = FakeProvider("b", replies=["a long enough answer"])
    async with Client([a, b], accept=judge, retry=NO_RETRY, log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b" and seen == ["a", "b"]


async def test_a_predicate_that_raises_fails_the_request_as_is() -> None:
    def broken(r: Response) -> None:
        raise KeyError("bug in the predicate")

    a = FakeProvider("a")
    b = FakeProvider("b")
    async with Client([a, b], accept=broken, log=False) as client:
        with pytest.raises(KeyError):
            await client.complete("hi")
        with pytest.raises(TypeError, match="returned int"):
            await client.complete("hi", accept=lambda r: 3)
    assert len(b.calls) == 0  # a bug is not the provider's fault: no fallback


def test_bad_accept_values_fail_at_configuration() -> None:
    with pytest.raises(ConfigurationError, match="accept"):
        Client(FakeProvider("a"), accept="not_empty")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"accept\[1\]"):
        Client(FakeProvider("a"), accept=[not_empty, 3])  # type: ignore[list-item]


async def test_race_waits_for_another_leg_when_the_first_answer_is_rejected(
    looptime: float,
) -> None:
    a = FakeProvider("a", replies=[TRUNCATED], latency=1.0)
    b = FakeProvider("b", replies=[GOOD], latency=3.0)
    async with Client(
        [a, b], strategy=Race(), accept=not_truncated, retry=NO_RETRY, log=False
    ) as client:
        start = float(looptime)
        response = await client.complete("hi")
        took = float(looptime) - start
        stats = client.statistics()["metrics"]["providers"]
    assert response.provider == "b"
    assert took == pytest.approx(3.0)  # not 1.0: the rejected answer did not win
    assert stats["a"]["fake-model"]["quality"]["rejected"] == 1
    assert stats["b"]["fake-model"]["races"] == {"started": 1, "won": 1}


async def test_hedge_waits_for_the_backup_when_the_primary_is_rejected(looptime: float) -> None:
    a = FakeProvider("a", replies=[TRUNCATED], latency=2.0)
    b = FakeProvider("b", replies=[GOOD], latency=5.0)
    hedge = Hedge(delay=1.0, allowance=1.0)
    async with Client([a, b], strategy=hedge, accept=not_truncated, log=False) as client:
        start = float(looptime)
        response = await client.complete("hi")
        took = float(looptime) - start
    assert response.provider == "b"
    assert took == pytest.approx(6.0)  # backup fired at 1 s, answered 5 s later


async def test_hedge_replaces_a_quickly_rejected_primary_at_once(looptime: float) -> None:
    a = FakeProvider("a", replies=[TRUNCATED], latency=0.2)
    b = FakeProvider("b", replies=[GOOD], latency=1.0)
    async with Client(
        [a, b], strategy=Hedge(delay=10.0), accept=not_truncated, log=False
    ) as client:
        start = float(looptime)
        response = await client.complete("hi")
        took = float(looptime) - start
    assert response.provider == "b" and took == pytest.approx(1.2)


async def test_complete_via_stream_falls_back_on_rejection() -> None:
    # A first-token timeout makes complete() consume a stream: same verdict, same fallback.
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[GOOD])
    async with Client(
        [a, b], accept=not_truncated, first_token_timeout=5, retry=NO_RETRY, log=False
    ) as client:
        response = await client.complete("hi")
    assert response.provider == "b"


async def test_stream_rejection_raises_at_the_end_after_the_chunks() -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[GOOD])
    got: list[str] = []
    async with Client([a, b], accept=not_truncated, pricing=PRICES, log=False) as client:
        with pytest.raises(AnswerRejected) as info:
            async with client.stream("hi") as s:
                async for chunk in s:
                    got.append(chunk.text)
        assert s.response is None
        metrics = client.statistics()["metrics"]
    assert "".join(got) == "cut short"  # delivered before the verdict
    assert info.value.response is not None and info.value.response.text == "cut short"
    assert len(b.calls) == 0  # the stream had committed: no fallback
    assert metrics["requests"]["errors"] == {"AnswerRejected": 1}
    assert metrics["providers"]["a"]["fake-model"]["cost_usd"] == pytest.approx(0.105)


@pytest.mark.parametrize("strategy", ["race", "hedge"])
async def test_raced_stream_rejection_reaches_the_consumer(strategy: str) -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[TRUNCATED], latency=1.0)
    async with Client([a, b], strategy=strategy, accept=not_truncated, log=False) as client:
        with pytest.raises(AnswerRejected):
            async with client.stream("hi") as s:
                async for _ in s:
                    pass
    assert a.open_streams == b.open_streams == 0


BREAKER = BreakerPolicy(min_volume=3, window=10, cooldown=5, rejection_rate=0.5)


async def test_breaker_opens_on_rejections_when_enabled_and_recovers() -> None:
    healthy = {"a": False}

    def script(request: object, i: int) -> FakeReply:
        return GOOD if healthy["a"] else TRUNCATED

    a = FakeProvider("a", handler=script)
    b = FakeProvider("b", replies=[GOOD])
    async with Client(
        [a, b], accept=not_truncated, breaker=BREAKER, retry=NO_RETRY, log=False
    ) as client:
        for _ in range(3):
            assert (await client.complete("hi")).provider == "b"
        breaker = client.statistics()["providers"]["a"]["breaker"]
        assert breaker["state"] == "open" and breaker["window_rejections"] == 3
        calls = len(a.calls)
        for _ in range(4):  # cooled down: a gets no traffic
            assert (await client.complete("hi")).provider == "b"
        assert len(a.calls) == calls
        healthy["a"] = True
        await anyio.sleep(5)
        assert (await client.complete("hi")).provider == "a"  # the probe is accepted
        assert client.statistics()["providers"]["a"]["breaker"]["state"] == "closed"


async def test_rejected_probe_opens_the_breaker_again() -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[GOOD])
    async with Client(
        [a, b], accept=not_truncated, breaker=BREAKER, retry=NO_RETRY, log=False
    ) as client:
        for _ in range(3):
            await client.complete("hi")
        await anyio.sleep(5)
        assert (await client.complete("hi")).provider == "b"  # probe on a, rejected
        stats = client.statistics()["providers"]["a"]["breaker"]
    assert stats["state"] == "open" and stats["opened"] == 2


async def test_breaker_ignores_rejections_when_disabled() -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    b = FakeProvider("b", replies=[GOOD])
    policy = BreakerPolicy(min_volume=3, window=10, cooldown=5)  # no rejection_rate
    async with Client(
        [a, b], accept=not_truncated, breaker=policy, retry=NO_RETRY, log=False
    ) as client:
        for _ in range(10):
            assert (await client.complete("hi")).provider == "b"
        stats = client.statistics()["providers"]["a"]["breaker"]
    assert len(a.calls) == 10  # never cooled down
    assert stats["state"] == "closed" and stats["window_rejections"] == 10
    assert stats["window_failures"] == 0


def test_rejection_rate_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="rejection_rate"):
        BreakerPolicy(rejection_rate=0)
    with pytest.raises(ConfigurationError, match="rejection_rate"):
        BreakerPolicy(rejection_rate=1.5)


async def test_a_rejected_stream_books_its_cost_in_the_budget() -> None:
    a = FakeProvider("a", replies=[TRUNCATED])
    budget = MemoryBudget(SpendLimit(10.0), pricing=PRICES)
    async with Client(a, accept=not_truncated, budget=budget, log=False) as client:
        with pytest.raises(AnswerRejected):
            async with client.stream("hi") as s:
                async for _ in s:
                    pass
    spent = sum(b["spent_usd"] for b in budget.statistics()["buckets"].values())
    assert spent == pytest.approx(0.105)


async def test_a_leg_cancelled_while_its_answer_is_judged_is_lost_and_paid_for(
    looptime: float,
) -> None:
    async def slow_judge(r: Response) -> None:
        await anyio.sleep(10 if r.provider == "a" else 0)

    a = FakeProvider("a", replies=[GOOD], latency=1.0)
    b = FakeProvider("b", replies=[GOOD], latency=2.0)
    async with Client(
        [a, b], strategy=Race(), accept=slow_judge, pricing=PRICES, log=False
    ) as client:
        start = float(looptime)
        response = await client.complete("hi")
        took = float(looptime) - start
        series = client.statistics()["metrics"]["providers"]["a"]["fake-model"]
    assert response.provider == "b" and took == pytest.approx(2.0)
    assert series["lost"] == 1 and series["cost_usd"] == pytest.approx(0.008)
    assert a.open_streams == b.open_streams == 0


async def test_map_applies_the_predicate_to_every_item() -> None:
    def script(request: Any, i: int) -> FakeReply:
        return TRUNCATED if i % 2 == 0 else GOOD

    a = FakeProvider("a", handler=script)
    client = Client(a, log=False)
    async with client, client.map(["x", "y", "z"], concurrency=1, accept=not_truncated) as results:
        outcomes = [r.response.text if r.response else "error" async for r in results]
    assert outcomes == ["a full answer"] * 3  # each truncated answer was retried
