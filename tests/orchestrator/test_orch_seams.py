"""The seams of ``asyncllm.abc``: limiter, budget, pricing, observers and cache, called in the
documented order with the right arguments, on success, failure and 429."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from _orchfakes import FixedPricing, RecordingBudget, RecordingLimiter, RecordingObserver

from asyncllm import (
    BadRequest,
    BudgetExceeded,
    ChatRequest,
    Chunk,
    Client,
    RateLimited,
    RateLimitInfo,
    Response,
    ServerError,
    Usage,
)
from asyncllm._types import DEFAULT_OUTPUT_CAP
from asyncllm.abc import CacheMode, Route
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

LIMITS = RateLimitInfo(limit_requests=100, remaining_requests=99)
USAGE = Usage(input_tokens=10, output_tokens=5)


async def test_success_pipeline_order_and_arguments() -> None:
    fake = FakeProvider("a", replies=[FakeReply(usage=USAGE, rate_limits=LIMITS)], kind="openai")
    limiter, budget, pricing = RecordingLimiter(), RecordingBudget(), FixedPricing(0.01)
    async with Client(
        fake, limits={"a": limiter}, budget=budget, pricing=pricing, log=False
    ) as client:
        response = await client.complete("hello there", max_tokens=50)
    request = fake.calls[0]
    expected_tokens = request.estimated_input_tokens() + 50
    assert budget.events == [
        ("reserve", "a", "openai", "fake-model", False),
        ("settle", pytest.approx(0.15)),
        ("release",),
    ]
    assert limiter.events == [
        ("acquire", expected_tokens, "fake-model"),
        ("settle", USAGE),
        ("release",),
        ("observe", LIMITS, "fake-model"),
    ]
    assert pricing.calls == [
        {"provider": "a", "kind": "openai", "model": "fake-model", "usage": USAGE, "local": False}
    ]
    assert response.cost_usd == pytest.approx(0.15)
    assert response.request_id is not None


async def test_default_output_estimate_without_max_tokens() -> None:
    fake = FakeProvider("a")
    limiter = RecordingLimiter()
    async with Client(fake, limits={"a": limiter}, log=False) as client:
        await client.complete("hi")
    tokens = limiter.events[0][1]
    assert tokens == fake.calls[0].estimated_input_tokens() + DEFAULT_OUTPUT_CAP


async def test_429_pauses_and_informs_the_limiter_not_the_breaker() -> None:
    limited = RateLimited("429", retry_after=2.5, rate_limits=LIMITS)
    fake = FakeProvider("a", replies=[limited, "ok"])
    limiter, budget = RecordingLimiter(), RecordingBudget()
    async with Client(fake, limits={"a": limiter}, budget=budget, log=False) as client:
        await client.complete("hi")
        breaker = client.statistics()["providers"]["a"]["breaker"]
    assert ("pause", 2.5, "fake-model") in limiter.events
    assert ("observe", LIMITS, "fake-model") in limiter.events
    # The 429 used nothing: the permit and the reservation are settled as such.
    assert limiter.permits[0].settled == [Usage()]
    assert budget.reservations[0].settled == [0.0]
    assert breaker["window_failures"] == 0


async def test_mid_stream_failure_settles_unknown_usage() -> None:
    breaks = FakeReply(tokens=("a", "b"), error=ServerError("x"), fail_after=1)
    fake = FakeProvider("a", replies=[breaks, "ok"])
    limiter, budget = RecordingLimiter(), RecordingBudget()
    async with Client(fake, limits={"a": limiter}, budget=budget, log=False) as client:
        await client.complete("hi")
    assert limiter.permits[0].settled == [None]  # something was generated: unknown
    assert budget.reservations[0].settled == [None]
    assert limiter.in_use == 0 and budget.open == 0


async def test_budget_refusal_fails_at_once() -> None:
    a = FakeProvider("a")
    b = FakeProvider("b")
    budget = RecordingBudget(refuse=BudgetExceeded("daily", 1.0, 0.5))
    observer = RecordingObserver()
    async with Client([a, b], budget=budget, log=False, observers=[observer]) as client:
        with pytest.raises(BudgetExceeded):
            await client.complete("hi")
    assert a.calls == b.calls == []
    assert observer.outcomes() == [("a", "primary", "error")]


async def test_observer_sees_requests_and_attempts_in_order() -> None:
    a = FakeProvider("a", replies=[ServerError("down")])
    b = FakeProvider("b", replies=["ok"])
    observer = RecordingObserver()
    async with Client([a, b], log=False, observers=[observer]) as client:
        await client.complete("hi")
        async with client.stream("hi") as s:
            async for _ in s:
                pass
    kinds = [e[0] for e in observer.events]
    assert kinds[:5] == [
        "request_started",
        "attempt_started",
        "attempt_finished",
        "attempt_started",
        "attempt_finished",
    ]
    assert kinds[5] == "request_finished"
    assert observer.events[5][1] == 2  # two attempts
    # The stream (a fails again): the first token is reported between start and finish.
    assert kinds[6:] == [
        "request_started",
        "attempt_started",
        "attempt_finished",
        "attempt_started",
        "attempt_first_token",
        "attempt_finished",
        "request_finished",
    ]
    assert observer.events[2][1] == ("a", "primary", "error")
    assert observer.events[4][1] == ("b", "fallback", "success")


async def test_a_raising_observer_never_fails_the_request() -> None:
    class Broken(RecordingObserver):
        def attempt_started(self, info: Any) -> None:
            raise RuntimeError("observer bug")

    good = RecordingObserver()
    async with Client(FakeProvider("a"), observers=[Broken(), good]) as client:
        response = await client.complete("hi")
    assert response.text == "Hello, world!"
    assert len(good.events) == 4


class RecordingCache:
    """A cache that records its calls and serves hits for keys it has seen."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Route, CacheMode, float | None]] = []
        self.store: dict[str, Response] = {}

    async def complete(
        self,
        request: ChatRequest,
        route: Route,
        call: Callable[[], Awaitable[Response]],
        *,
        mode: CacheMode = "use",
        ttl: float | None = None,
    ) -> Response:
        self.calls.append(("complete", route, mode, ttl))
        key = request.messages[-1].text()
        if mode == "use" and key in self.store:
            return self.store[key]
        response = await call()
        self.store[key] = response
        return response

    def stream(
        self,
        request: ChatRequest,
        route: Route,
        open_stream: Callable[[], AbstractAsyncContextManager[AsyncIterator[Chunk]]],
        *,
        mode: CacheMode = "use",
        ttl: float | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[Chunk]]:
        self.calls.append(("stream", route, mode, ttl))

        @asynccontextmanager
        async def cm() -> AsyncIterator[AsyncIterator[Chunk]]:
            async with open_stream() as upstream:
                yield upstream

        return cm()

    def statistics(self) -> dict[str, Any]:
        return {"entries": len(self.store)}


async def test_cache_seam_route_mode_ttl_and_hits_skip_everything() -> None:
    a = FakeProvider("a", kind="openai")
    b = FakeProvider("b", model="other", kind="anthropic")
    cache = RecordingCache()
    limiter = RecordingLimiter()
    async with Client([a, b], cache=cache, limits={"a": limiter}, log=False) as client:
        first = await client.complete("q", cache_ttl=60)
        again = await client.complete("q")
        await client.complete("q", cache="refresh")
        async with client.stream("s", cache="bypass") as s:
            async for _ in s:
                pass
        assert client.statistics()["cache"] == {"entries": 1}
    route = (("a", "openai", "fake-model"), ("b", "anthropic", "other"))
    assert cache.calls == [
        ("complete", route, "use", 60),
        ("complete", route, "use", None),
        ("complete", route, "refresh", None),
        ("stream", route, "bypass", None),
    ]
    assert again is first
    assert len(a.calls) == 3  # the hit touched no provider...
    assert len([e for e in limiter.events if e[0] == "acquire"]) == 3  # ...and no limiter
    assert s.response is not None and s.response.provider == "a"
    assert s.request_id is not None


async def test_bad_requests_never_reach_the_limiter() -> None:
    fake = FakeProvider("a", replies=[BadRequest("invalid", status_code=422)])
    limiter = RecordingLimiter()
    async with Client(fake, limits={"a": limiter}, log=False) as client:
        with pytest.raises(BadRequest):
            await client.complete("hi")
        breaker = client.statistics()["providers"]["a"]["breaker"]
    assert breaker["window_failures"] == 0  # bad requests do not trip the breaker
    assert limiter.in_use == 0
