"""MemoryBudget: reservations under concurrency, settlement, periods, tags, alerts."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from structlog.testing import capture_logs

from asyncllm import BudgetExceeded, ChatRequest, ConfigurationError, Message, Usage
from asyncllm.cost import BudgetAlert, MemoryBudget, ModelPrice, Prices, SpendLimit

# $1 per 1,000 tokens in or out: a request's worst case is easy to compute by hand.
PRICES = Prices(
    {
        ("openai", "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000),
        ("anthropic", "m"): ModelPrice(input_per_mtok=2000, output_per_mtok=2000),
    }
)


def req(max_tokens: int = 100, **tags: str) -> ChatRequest:
    return ChatRequest(messages=(Message("user", "hi"),), max_tokens=max_tokens, tags=tags or None)


def worst(r: ChatRequest, per_token: float = 0.001) -> float:
    assert r.max_tokens is not None
    return (r.estimated_input_tokens() + r.max_tokens) * per_token


class Clock:
    def __init__(self, t: float = 1_750_000_000.0) -> None:  # 2025-06-15 15:06:40 UTC
        self.t = t

    def __call__(self) -> float:
        return self.t


def budget(*limits: SpendLimit | float, **kw: Any) -> MemoryBudget:
    kw.setdefault("pricing", PRICES)
    return MemoryBudget(*limits, **kw)


async def spend(b: MemoryBudget, r: ChatRequest, cost: float | None, **kw: Any) -> None:
    kw = {"provider": "openai", "kind": "openai", "model": "m", "local": False, **kw}
    async with b.reserve(r, **kw) as res:
        res.settle(cost)


async def test_thousand_concurrent_requests_never_settle_above_the_limit() -> None:
    limit = 10.0
    b = budget(SpendLimit(limit))
    r = req(max_tokens=50)
    w = worst(r)  # 0.058
    rng = random.Random(7)
    settled: list[float] = []
    refusals: list[BudgetExceeded] = []

    async def one() -> None:
        try:
            async with b.reserve(
                r, provider="openai", kind="openai", model="m", local=False
            ) as res:
                for _ in range(rng.randrange(3)):
                    await anyio.lowlevel.checkpoint()
                cost = w * rng.uniform(0.2, 1.0)  # known usage never exceeds the worst case
                res.settle(cost)
                settled.append(cost)
        except BudgetExceeded as e:
            refusals.append(e)

    async with anyio.create_task_group() as tg:
        for _ in range(1000):
            tg.start_soon(one)

    stats = b.statistics()["buckets"]["day"]
    assert sum(settled) <= limit
    assert stats["spent_usd"] == pytest.approx(sum(settled), abs=1e-6)
    assert stats["spent_usd"] <= limit and stats["reserved_usd"] == 0
    assert refusals and len(settled) + len(refusals) == 1000
    assert stats["refusals"] == len(refusals)
    # Refused only when the worst case did not fit what was left.
    assert all(e.remaining_usd < e.requested_usd for e in refusals)
    assert all(e.requested_usd == pytest.approx(w) for e in refusals)
    # ...so at least limit // worst requests got through.
    assert len(settled) >= int(limit // w)


async def test_refusals_begin_exactly_when_the_reservation_cannot_fit() -> None:
    r = req(max_tokens=100)
    w = worst(r)
    b = budget(SpendLimit(4 * w))
    kw = {"provider": "openai", "kind": "openai", "model": "m", "local": False}
    held = [b.reserve(r, **kw) for _ in range(4)]
    for cm in held:
        await cm.__aenter__()  # four worst cases fill the budget exactly
    assert b.statistics()["buckets"]["day"]["remaining_usd"] == pytest.approx(0)
    with pytest.raises(BudgetExceeded) as ei:
        await spend(b, r, None)
    assert ei.value.remaining_usd == pytest.approx(0) and ei.value.requested_usd == pytest.approx(w)
    held[0].settle(w / 2)  # settles below its worst case: half a request is free again
    await held[0].__aexit__(None, None, None)
    with pytest.raises(BudgetExceeded):
        await spend(b, r, None)
    smaller = req(max_tokens=100 - r.estimated_input_tokens() - 50)
    assert worst(smaller) <= w / 2
    await spend(b, smaller, worst(smaller))  # fits in the freed half
    for cm in held[1:]:
        cm.settle(w)
        await cm.__aexit__(None, None, None)
    stats = b.statistics()["buckets"]["day"]
    assert stats["spent_usd"] == pytest.approx(3.5 * w + worst(smaller))
    assert stats["refusals"] == 2 and stats["reservations"] == 5


async def test_cancelled_attempt_keeps_its_worst_case_unless_settled() -> None:
    r = req()
    b = budget(SpendLimit(100.0))
    kw = {"provider": "openai", "kind": "openai", "model": "m", "local": False}
    with anyio.move_on_after(0.01):
        async with b.reserve(r, **kw):
            await anyio.sleep(10)
    assert b.statistics()["buckets"]["day"]["spent_usd"] == pytest.approx(worst(r))
    with anyio.move_on_after(0.01):
        async with b.reserve(r, **kw) as res:
            res.settle(0.01)
            await anyio.sleep(10)
    stats = b.statistics()["buckets"]["day"]
    assert stats["spent_usd"] == pytest.approx(worst(r) + 0.01)
    assert stats["reserved_usd"] == 0


async def test_settle_none_keeps_worst_case_and_costs_above_worst_are_recorded() -> None:
    r = req()
    b = budget(SpendLimit(100.0))
    await spend(b, r, None)
    await spend(b, r, 5.0)  # longer than assumed: the real cost is what was spent
    assert b.statistics()["buckets"]["day"]["spent_usd"] == pytest.approx(worst(r) + 5.0)


async def test_fallback_reserves_at_the_other_providers_price() -> None:
    r = req()
    b = budget(SpendLimit(100.0), SpendLimit(1.0, provider="anthropic"))
    async with b.reserve(r, provider="claude", kind="anthropic", model="m", local=False) as res:
        assert res.amount_usd == pytest.approx(worst(r, 0.002))
        stats = b.statistics()["buckets"]
        assert stats["day"]["reserved_usd"] == pytest.approx(worst(r, 0.002))
        assert stats["day/provider=anthropic"]["reserved_usd"] == pytest.approx(worst(r, 0.002))
        res.settle(0.1)
    await spend(b, r, 0.2)  # openai: only the global limit counts it
    stats = b.statistics()["buckets"]
    assert stats["day"]["spent_usd"] == pytest.approx(0.3)
    assert stats["day/provider=anthropic"]["spent_usd"] == pytest.approx(0.1)


async def test_per_tag_limits_are_separate_and_untagged_requests_skip_them() -> None:
    r_a, r_b, untagged = req(tenant="a"), req(tenant="b"), req()
    w = worst(r_a)
    b = budget(SpendLimit(2 * w, per_tag="tenant"))
    await spend(b, r_a, None)
    await spend(b, r_a, None)
    with pytest.raises(BudgetExceeded, match=r"tenant\[a\]"):
        await spend(b, r_a, None)
    await spend(b, r_b, None)  # tenant b has its own limit
    for _ in range(5):
        await spend(b, untagged, None)  # not counted by a per-tenant limit
    buckets = b.statistics()["buckets"]
    assert set(buckets) == {"day/per:tenant[a]", "day/per:tenant[b]"}
    assert buckets["day/per:tenant[a]"]["refusals"] == 1


async def test_tag_filter_limits_only_matching_requests() -> None:
    b = budget(SpendLimit(0.0, tags={"feature": "search"}))
    with pytest.raises(BudgetExceeded):
        await spend(b, req(feature="search"), None)
    await spend(b, req(feature="chat"), None)


async def test_calendar_day_resets_and_thresholds_fire_once_per_period() -> None:
    clock = Clock()
    alerts: list[BudgetAlert] = []
    b = budget(SpendLimit(1.0, period="day"), clock=clock, on_alert=alerts.append)
    r = req(max_tokens=10)  # worst case 0.017: small enough to fill the budget to 1.0
    with capture_logs() as logs:
        for cost in (0.5, 0.35, 0.1, 0.05):  # 0.85 crosses 0.8; 1.0 reached at the end
            await spend(b, r, cost)
    assert [(a.kind, a.threshold) for a in alerts] == [("threshold", 0.8), ("threshold", 1.0)]
    assert alerts[0].spent_usd == pytest.approx(0.85) and alerts[0].bucket == "day"
    assert [e["event"] for e in logs] == ["budget.threshold", "budget.threshold"]
    assert logs[0]["threshold"] == 0.8 and logs[0]["log_level"] == "warning"
    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            await spend(b, r, None)
    assert [a.kind for a in alerts].count("refused") == 1  # first refusal of the period only
    clock.t += 86_400  # next UTC day
    stats = b.statistics()["buckets"]["day"]
    assert stats["spent_usd"] == 0 and stats["period"] == "2025-06-16"
    assert stats["period_start"] == 1_750_032_000.0
    await spend(b, r, 0.9)
    assert [a.threshold for a in alerts[-1:]] == [0.8]


async def test_calendar_month_period() -> None:
    clock = Clock(1_751_327_999.0)  # 2025-06-30 23:59:59 UTC
    b = budget(SpendLimit(1.0, period="month"), clock=clock)
    await spend(b, req(), 0.7)
    assert b.statistics()["buckets"]["month"]["period"] == "2025-06"
    clock.t += 1
    stats = b.statistics()["buckets"]["month"]
    assert stats["period"] == "2025-07" and stats["spent_usd"] == 0


async def test_rolling_window_forgets_old_spend() -> None:
    clock = Clock(1000.0)
    alerts: list[BudgetAlert] = []
    b = budget(SpendLimit(1.0, period=60), clock=clock, on_alert=alerts.append)
    r = req()
    await spend(b, r, 0.5)
    clock.t += 30
    await spend(b, r, 0.4)
    assert [a.threshold for a in alerts] == [0.8]
    clock.t += 31  # the first 0.5 is now older than 60 s
    stats = b.statistics()["buckets"]["60s"]
    assert stats["spent_usd"] == pytest.approx(0.4)
    assert stats["period_start"] == pytest.approx(clock.t - 60)
    await spend(b, r, 0.45)  # back above 0.8 after dropping below: alerts again
    assert [a.threshold for a in alerts] == [0.8, 0.8]
    await spend(b, r, 0.14)
    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            await spend(b, r, None)
    clock.t += 31  # the 0.4 ages out: the next refusal is news again
    await spend(b, r, 0.4)
    with pytest.raises(BudgetExceeded):
        await spend(b, r, None)
    assert [a.kind for a in alerts].count("refused") == 2


async def test_local_and_unknown_prices() -> None:
    b = budget(SpendLimit(0.0))
    await spend(b, req(), None, kind="vllm", provider="gpu", local=True)  # free: always fits
    with capture_logs(), pytest.raises(ConfigurationError, match="unpriced-model"):
        await spend(b, req(), None, model="unpriced-model")  # unknown: never silently free
    allowed = budget(SpendLimit(1.0), unknown_price="allow")
    with capture_logs():
        await spend(allowed, req(), None, model="unpriced-model")  # explicitly uncounted
    strict = budget(SpendLimit(10.0), unknown_price="refuse")
    with capture_logs(), pytest.raises(BudgetExceeded, match="unknown price"):
        await spend(strict, req(), None, model="unpriced-model")


async def test_alert_callback_errors_are_logged_not_raised() -> None:
    def boom(alert: BudgetAlert) -> None:
        raise RuntimeError("callback bug")

    b = budget(SpendLimit(1.0), on_alert=boom)
    with capture_logs() as logs:
        await spend(b, req(), 0.9)
    assert "budget.alert_callback_failed" in [e["event"] for e in logs]


@pytest.mark.parametrize(
    "make",
    [
        lambda: MemoryBudget(pricing=PRICES),
        lambda: MemoryBudget(SpendLimit(1), SpendLimit(2), pricing=PRICES),
        lambda: MemoryBudget(1.0, thresholds=(0,), pricing=PRICES),
        lambda: MemoryBudget(1.0, unknown_price="maybe", pricing=PRICES),
        lambda: SpendLimit(-1),
        lambda: SpendLimit(1, period="week"),  # type: ignore[arg-type]
        lambda: SpendLimit(1, period=0),
    ],
)
def test_bad_configuration_is_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_plain_numbers_are_daily_limits() -> None:
    b = MemoryBudget(5.0, pricing=PRICES)
    assert b.limits == (SpendLimit(5.0, name="day"),)
    assert b.statistics()["buckets"]["day"]["limit_usd"] == 5.0


def test_usage_helper_sanity() -> None:
    # The worst case the tests rely on: estimated input tokens + max_tokens at $0.001.
    r = req(max_tokens=10)
    assert PRICES.worst_case(r, kind="openai", model="m", local=False) == pytest.approx(worst(r))
    assert PRICES.cost(
        provider="openai", kind="openai", model="m", usage=Usage(10, 10), local=False
    ) == pytest.approx(0.02)
