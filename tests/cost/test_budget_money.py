"""Money is never silently off: unpriced models, passed limits, the client's prices, one cap."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from asyncllm import (
    AllProvidersFailed,
    BudgetExceeded,
    ChatRequest,
    Client,
    ConfigurationError,
    Message,
    Usage,
    output_cap,
)
from asyncllm._types import DEFAULT_OUTPUT_CAP
from asyncllm.cost import MemoryBudget, ModelPrice, Prices, SpendLimit
from asyncllm.limits import reservation_tokens
from asyncllm.providers._anthropic_wire import build_body
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

PRICED = Prices({("openai", "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000)})


def fake(model: str | None = "m", **kw: Any) -> FakeProvider:
    usage = Usage(input_tokens=10, output_tokens=10)
    kw.setdefault("kind", "openai")
    return FakeProvider("p", model=model, handler=lambda r, i: FakeReply(usage=usage), **kw)


def refused(exc: BaseException) -> bool:
    if isinstance(exc, BudgetExceeded):
        return True
    return isinstance(exc, AllProvidersFailed) and all(
        isinstance(e, BudgetExceeded) for e in exc.exceptions
    )


def test_unpriced_default_model_is_refused_when_the_client_is_built() -> None:
    with capture_logs(), pytest.raises(ConfigurationError) as info:
        Client(fake("unpriced-x"), budget=MemoryBudget(0.01), pricing=PRICED, log=False)
    assert "unpriced-x" in str(info.value) and "'p'" in str(info.value)


async def test_unpriced_request_model_is_refused_at_the_first_request() -> None:
    provider = fake(None)
    async with Client(provider, budget=MemoryBudget(0.01), pricing=PRICED, log=False) as c:
        for _ in range(3):
            with capture_logs(), pytest.raises(ConfigurationError, match="unpriced-y"):
                await c.complete("hi", model="unpriced-y", max_tokens=5)
    assert provider.calls == []


async def test_a_zero_price_or_an_explicit_allow_runs_the_unpriced_model() -> None:
    free = Prices({("p", "local-m"): ModelPrice(0, 0)})
    async with Client(fake("local-m"), budget=MemoryBudget(0.01), pricing=free, log=False) as c:
        assert (await c.complete("hi", max_tokens=5)).cost_usd == 0
    budget = MemoryBudget(0.01, unknown_price="allow")
    with capture_logs():
        async with Client(fake("unpriced-z"), budget=budget, pricing=PRICED, log=False) as c:
            assert (await c.complete("hi", max_tokens=5)).cost_usd is None


async def test_a_passed_limit_refuses_every_later_request_whatever_its_price() -> None:
    budget = MemoryBudget(SpendLimit(0.01), pricing=PRICED, unknown_price="allow")
    r = ChatRequest(messages=(Message("user", "hi"),), max_tokens=1)
    kw = {"provider": "p", "kind": "openai", "local": False}
    async with budget.reserve(r, model="m", **kw) as res:
        res.settle(0.02)  # a long answer settles above the limit
    for _ in range(50):  # sequential, unpriced: each one must be refused
        with capture_logs(), pytest.raises(BudgetExceeded):
            async with budget.reserve(r, model="unpriced", **kw):
                pass
    with pytest.raises(BudgetExceeded):
        async with budget.reserve(r, model="free", provider="gpu", kind="vllm", local=True):
            pass


async def test_client_prices_reach_a_budget_built_without_pricing() -> None:
    # Issue 12: with the budget's own default prices, 1,000 of 1,000 requests ran.
    budget = MemoryBudget(1.46)
    async with Client(fake(), budget=budget, pricing=PRICED, log=False) as c:
        assert budget.pricing is PRICED
        answered = refusals = 0
        for _ in range(1000):
            try:
                await c.complete("hi", max_tokens=10)
                answered += 1
            except Exception as exc:
                assert refused(exc)
                refusals += 1
    spent = budget.statistics()["buckets"]["day"]["spent_usd"]
    assert refusals > 0 and spent <= 1.46
    assert answered == pytest.approx(1.46 / 0.020, abs=2)  # $0.02 a request


def test_two_different_price_tables_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="different pricing"):
        Client(fake(), budget=MemoryBudget(1.0, pricing=Prices()), pricing=PRICED, log=False)


def test_one_output_cap_for_limiter_budget_and_wire() -> None:
    r = ChatRequest(messages=(Message("user", "hello"),))
    assert output_cap(r) == DEFAULT_OUTPUT_CAP
    assert reservation_tokens(r) == r.estimated_input_tokens() + DEFAULT_OUTPUT_CAP
    assert build_body(r, "claude", stream=False)["max_tokens"] == DEFAULT_OUTPUT_CAP
    worst = PRICED.worst_case(r, kind="openai", model="m", local=False)
    assert worst == pytest.approx((r.estimated_input_tokens() + DEFAULT_OUTPUT_CAP) / 1000)
    assert output_cap(ChatRequest(messages=r.messages, max_tokens=7)) == 7


def test_a_budget_shared_by_clients_with_different_prices_is_refused() -> None:
    budget = MemoryBudget(1.0)
    Client(fake(), budget=budget, pricing=PRICED, log=False)
    other = Prices({("openai", "m"): ModelPrice(input_per_mtok=1, output_per_mtok=1)})
    with pytest.raises(ConfigurationError, match="different pricing"):
        Client(fake(), budget=budget, pricing=other, log=False)


class _RecordingLimiter:
    """Records what each attempt asks the limiter for; never waits."""

    def __init__(self) -> None:
        from asyncllm._hooks import NoLimiter

        self._inner = NoLimiter()
        self.asked: list[int] = []

    def acquire(self, tokens: int, *, model: str) -> Any:
        self.asked.append(tokens)
        return self._inner.acquire(tokens, model=model)

    def observe(self, info: Any, *, model: str) -> None:
        pass

    def pause(self, seconds: float, *, model: str) -> None:
        pass

    def statistics(self) -> dict[str, Any]:
        return {}


async def test_the_wire_cap_is_what_the_budget_and_the_limiter_reserve() -> None:
    # A request without max_tokens on Anthropic's wire is sent the driver's
    # default_max_tokens; the budget (even one given its own smaller default) and the
    # limiter must reserve that same cap, or concurrent requests overspend the budget
    # (1,000 of 1,000 let through, $61 spent of $1.46, in a user's trial).
    import anyio
    import orjson

    from asyncllm.providers import AnthropicProvider
    from asyncllm.testing import Simulator

    prices = Prices(
        {("anthropic", "claude-t"): ModelPrice(input_per_mtok=0.0, output_per_mtok=1000.0)}
    )  # $0.001 an output token
    limiter = _RecordingLimiter()
    async with Simulator(output_tokens=500) as sim:
        provider = AnthropicProvider(
            name="anth", model="claude-t", api_key="k", base_url=sim.anthropic_base_url,
            default_max_tokens=64,
        )  # fmt: skip
        budget = MemoryBudget(1.0, default_max_tokens=4)
        async with Client(
            provider, pricing=prices, budget=budget, limits={"anth": limiter}, log=False
        ) as client:
            answered = refused = 0

            async def one(i: int) -> None:
                nonlocal answered, refused
                try:
                    r = await client.complete(f"question {i}")
                except BudgetExceeded:
                    refused += 1
                else:
                    answered += 1
                    assert r.usage is not None and r.usage.output_tokens <= 64

            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(one, i)
        bodies = [orjson.loads(req.body) for req in sim.requests]
    (bucket,) = budget.statistics()["buckets"].values()
    spent = bucket["spent_usd"]
    assert spent <= 1.0 + 1e-9, (spent, answered)
    assert refused > 0 and answered <= 1.0 / 0.064 + 1
    assert {b["max_tokens"] for b in bodies} == {64}
    assert limiter.asked and all(t - 64 < 64 for t in limiter.asked)  # input + 64
