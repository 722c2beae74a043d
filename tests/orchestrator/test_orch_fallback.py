"""Fallback strategy, retries, Retry-After, attempt cap, retry allowance, deadlines, timeouts."""

from __future__ import annotations

import random

import pytest
import structlog
from _orchfakes import RecordingObserver, other_tasks

from asyncllm import (
    AllProvidersFailed,
    AuthenticationFailed,
    BadRequest,
    ChatRequest,
    Client,
    ConfigurationError,
    ConnectionFailed,
    DeadlineExceeded,
    InvalidRequestError,
    Overloaded,
    ProviderTimeout,
    RateLimited,
    Response,
    ServerError,
)
from asyncllm.orchestrator import RetryPolicy, current_request_id
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

NO_RETRY = RetryPolicy(max_retries=0)


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down"),
        Overloaded("busy"),
        ServerError("boom", status_code=500),
        ProviderTimeout("late"),
        ConnectionFailed("reset"),
    ],
)
async def test_fallback_moves_on_for_errors_another_provider_may_fix(error: Exception) -> None:
    a = FakeProvider("a", replies=[error])
    b = FakeProvider("b", replies=["from b"])
    async with Client([a, b], log=False) as client:
        response = await client.complete("hi")
    assert (response.text, response.provider) == ("from b", "b")
    assert len(a.calls) == 1 and len(b.calls) == 1


@pytest.mark.parametrize(
    "error", [BadRequest("no such model", status_code=404), AuthenticationFailed("bad key")]
)
async def test_fallback_fails_at_once_for_bad_request_and_auth(error: Exception) -> None:
    a = FakeProvider("a", replies=[error])
    b = FakeProvider("b", replies=["from b"])
    async with Client([a, b], log=False) as client:
        with pytest.raises(type(error)) as info:
            await client.complete("hi")
    assert info.value.provider == "a"  # type: ignore[attr-defined]
    assert len(b.calls) == 0


async def test_all_providers_failed_carries_each_error() -> None:
    a = FakeProvider("a", replies=[ServerError("a down", status_code=503)])
    b = FakeProvider("b", replies=[Overloaded("b busy")])
    async with Client([a, b], retry=NO_RETRY, log=False) as client:
        with pytest.raises(AllProvidersFailed) as info:
            await client.complete("hi")
    errors = info.value.exceptions
    assert [type(e) for e in errors] == [ServerError, Overloaded]
    assert [e.provider for e in errors] == ["a", "b"]  # type: ignore[union-attr]
    assert info.value.retryable


async def test_retries_back_off_with_seeded_full_jitter(looptime: float) -> None:
    a = FakeProvider("a", replies=[ServerError("1"), ServerError("2"), "ok"])
    retry = RetryPolicy(max_retries=2, base_delay=1.0, rng=random.Random(42))
    expected = RetryPolicy(base_delay=1.0)
    check = random.Random(42)
    waits = [expected.backoff(1, check), expected.backoff(2, check)]
    async with Client(a, retry=retry, log=False) as client:
        start = float(looptime)
        response = await client.complete("hi")
        elapsed = float(looptime) - start
    assert response.text == "ok"
    assert elapsed == pytest.approx(sum(waits), abs=1e-3)
    assert 0 < waits[0] <= 1.0 and 0 < waits[1] <= 2.0


async def test_retry_after_is_honoured(looptime: float) -> None:
    a = FakeProvider("a", replies=[RateLimited("429", retry_after=3.0), "ok"])
    async with Client(a, retry=RetryPolicy(base_delay=0.1), log=False) as client:
        response = await client.complete("hi")
    assert response.text == "ok"
    assert float(looptime) == pytest.approx(3.0, abs=1e-3)


async def test_retry_after_that_does_not_fit_the_deadline_fails_fast(looptime: float) -> None:
    a = FakeProvider("a", replies=[RateLimited("429", retry_after=5.0), "ok"])
    async with Client(a, timeout=2.0, log=False) as client:
        with pytest.raises(AllProvidersFailed) as info:
            await client.complete("hi")
    assert float(looptime) == pytest.approx(0.0, abs=1e-3)  # no pointless wait
    assert isinstance(info.value.exceptions[0], RateLimited)
    assert len(a.calls) == 1


async def test_one_attempt_counter_caps_everything() -> None:
    a = FakeProvider("a", replies=[ServerError("down")])
    b = FakeProvider("b", replies=[ServerError("down")])
    retry = RetryPolicy(max_retries=3, base_delay=0.01)
    async with Client([a, b], retry=retry, log=False) as client:
        with pytest.raises(AllProvidersFailed) as info:
            await client.complete("hi")
    assert len(a.calls) + len(b.calls) == 5  # two providers + three retries
    assert len(info.value.exceptions) == 5
    assert abs(len(a.calls) - len(b.calls)) <= 1  # retries spread over the providers


async def test_retry_budget_stops_retry_storms() -> None:
    a = FakeProvider("a", replies=[ServerError("down")])
    retry = RetryPolicy(
        max_retries=5,
        base_delay=0.01,
        allowance_burst=1,
        allowance_ratio=0.0,
        allowance_per_second=0,
    )
    async with Client(a, retry=retry, log=False) as client:
        with pytest.raises(AllProvidersFailed, match="retry allowance"):
            await client.complete("hi")
        assert len(a.calls) == 2  # the burst allowed one retry
        with pytest.raises(AllProvidersFailed):
            await client.complete("hi")
        assert len(a.calls) == 3  # no token left: no retry at all
        assert client.statistics()["retry_allowance"]["denied"] == 2


async def test_overall_deadline(looptime: float) -> None:
    a = FakeProvider("a", latency=10.0)
    observer = RecordingObserver()
    async with Client(a, timeout=1.0, log=False, observers=[observer]) as client:
        with pytest.raises(DeadlineExceeded):
            await client.complete("hi")
    assert float(looptime) == pytest.approx(1.0, abs=1e-3)
    assert (a.cancelled, a.open_streams) == (1, 0)
    assert observer.outcomes() == [("a", "primary", "cancelled")]
    assert isinstance(observer.events[-1][2], DeadlineExceeded)
    assert not other_tasks()


async def test_deadline_covers_backoff(looptime: float) -> None:
    a = FakeProvider("a", replies=[ServerError("down")])
    retry = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=0.5, allowance_burst=100)
    async with Client(a, timeout=2.0, retry=retry, log=False) as client:
        with pytest.raises((DeadlineExceeded, AllProvidersFailed)):
            await client.complete("hi")
    assert float(looptime) <= 2.0 + 1e-6


async def test_attempt_timeout_falls_over(looptime: float) -> None:
    a = FakeProvider("a", latency=5.0)
    b = FakeProvider("b", latency=0.1, replies=["from b"])
    async with Client([a, b], attempt_timeout=1.0, log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    assert float(looptime) == pytest.approx(1.1, abs=1e-3)
    assert (a.cancelled, a.open_streams) == (1, 0)


async def test_first_token_timeout_on_complete(looptime: float) -> None:
    slow_first = FakeReply(tokens=("", "late"), latency=0.1, token_delay=5.0)
    a = FakeProvider("a", replies=[slow_first])
    b = FakeProvider("b", replies=["from b"])
    async with Client([a, b], first_token_timeout=0.5, log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    assert float(looptime) == pytest.approx(0.5, abs=1e-3)
    assert a.open_streams == 0


class _CountingProvider(FakeProvider):
    completes = 0

    async def complete(self, request: ChatRequest) -> Response:
        self.completes += 1
        return await super().complete(request)


async def test_first_token_timeout_builds_complete_answers_from_a_stream(looptime: float) -> None:
    """Only a stream shows the first token, so with ``first_token_timeout`` a ``complete``
    attempt consumes a stream (by design, see ``orchestrator/_complete.py``) and returns
    the same answer, priced and reported like a non-streamed one."""
    plain, timed = (
        _CountingProvider("a", replies=["hi there"]),
        _CountingProvider("a", replies=["hi there"]),
    )
    seen = RecordingObserver()
    async with Client(plain, log=False) as client:
        r1 = await client.complete("hi")
    async with Client(timed, first_token_timeout=5.0, log=False, observers=[seen]) as client:
        r2 = await client.complete("hi")
    assert (plain.completes, timed.completes) == (1, 0)
    assert timed.completed == 1 and timed.open_streams == 0
    assert (r2.text, r2.usage, r2.finish_reason) == (r1.text, r1.usage, r1.finish_reason)
    assert [k for k, *_ in seen.events] == [
        "request_started",
        "attempt_started",
        "attempt_first_token",
        "attempt_finished",
        "request_finished",
    ]
    assert seen.outcomes() == [("a", "primary", "success")]


async def test_bad_input_and_configuration_raise_before_any_call() -> None:
    a = FakeProvider("a", model=None)
    async with Client(a, log=False) as client:
        with pytest.raises(ConfigurationError, match="no default model"):
            await client.complete("hi")
        with pytest.raises(InvalidRequestError):
            await client.complete(12345)
        with pytest.raises(InvalidRequestError):
            await client.complete([{"role": "wizard", "content": "x"}], model="m")
        with pytest.raises(InvalidRequestError):
            client.stream("hi", temprature=0.3)
        with pytest.raises(InvalidRequestError):
            await client.complete("hi", model="m", cache="sometimes")  # type: ignore[arg-type]
    assert a.calls == []
    with pytest.raises(ConfigurationError):
        Client("nope:model")
    with pytest.raises(ConfigurationError):
        Client(a, limits={"zzz": None})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError):
        Client([FakeProvider("x"), FakeProvider("x")])
    with pytest.raises(ConfigurationError):
        Client(a, timeout=0)


async def test_request_id_is_bound_for_the_request() -> None:
    seen: list[tuple[str | None, object]] = []

    def handler(request: object, i: int) -> str:
        seen.append(
            (
                current_request_id(),
                structlog.contextvars.get_contextvars().get("asyncllm_request_id"),
            )
        )
        return "ok"

    a = FakeProvider("a", handler=handler)
    async with Client(a, log=False) as client:
        response = await client.complete("hi")
    assert response.request_id is not None
    assert seen == [(response.request_id, response.request_id)]
    assert current_request_id() is None  # unbound after the request
    assert "asyncllm_request_id" not in structlog.contextvars.get_contextvars()
