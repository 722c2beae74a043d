"""Race strategy: the first success wins, the others are cancelled and closed."""

from __future__ import annotations

import pytest
from _orchfakes import RecordingObserver, other_tasks

from asyncllm import AllProvidersFailed, BadRequest, Client, ServerError
from asyncllm.orchestrator import Race, RetryPolicy
from asyncllm.testing import FakeProvider

pytestmark = pytest.mark.looptime


async def test_race_first_success_wins_and_losers_are_cancelled(looptime: float) -> None:
    a = FakeProvider("a", latency=1.0, replies=["a"])
    b = FakeProvider("b", latency=0.2, replies=["b"])
    c = FakeProvider("c", latency=0.5, replies=["c"])
    observer = RecordingObserver()
    async with Client([a, b, c], strategy="race", log=False, observers=[observer]) as client:
        response = await client.complete("hi")
        assert float(looptime) == pytest.approx(0.2, abs=1e-3)
        assert response.provider == "b"
        assert (a.cancelled, c.cancelled, b.completed) == (1, 1, 1)
        assert a.open_streams == b.open_streams == c.open_streams == 0
        assert not other_tasks()
        assert sorted(observer.outcomes()) == [
            ("a", "race", "lost"),
            ("b", "race", "success"),
            ("c", "race", "lost"),
        ]
        assert client.statistics()["counters"]["lost"] == 2


async def test_race_n_starts_only_the_first_n() -> None:
    a = FakeProvider("a", latency=0.3)
    b = FakeProvider("b", latency=0.1)
    c = FakeProvider("c", latency=0.0)
    async with Client([a, b, c], strategy=Race(n=2), log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    assert len(c.calls) == 0


async def test_race_failed_leg_is_replaced_by_the_next_provider(looptime: float) -> None:
    a = FakeProvider("a", latency=0.1, replies=[ServerError("down")])
    b = FakeProvider("b", latency=2.0, replies=["b"])
    c = FakeProvider("c", latency=0.3, replies=["c"])
    observer = RecordingObserver()
    async with Client([a, b, c], strategy=Race(n=2), log=False, observers=[observer]) as client:
        response = await client.complete("hi")
    assert response.provider == "c"
    assert float(looptime) == pytest.approx(0.4, abs=1e-3)  # c started when a failed
    assert ("c", "fallback", "success") in observer.outcomes()
    assert b.cancelled == 1


async def test_race_bad_request_fails_at_once_and_cancels_the_rest(looptime: float) -> None:
    a = FakeProvider("a", latency=0.1, replies=[BadRequest("invalid", status_code=400)])
    b = FakeProvider("b", latency=5.0)
    async with Client([a, b], strategy="race", log=False) as client:
        with pytest.raises(BadRequest):
            await client.complete("hi")
    assert float(looptime) == pytest.approx(0.1, abs=1e-3)
    assert (b.cancelled, b.open_streams) == (1, 0)
    assert not other_tasks()


async def test_race_all_failed() -> None:
    a = FakeProvider("a", replies=[ServerError("a")])
    b = FakeProvider("b", replies=[ServerError("b")])
    retry = RetryPolicy(max_retries=0)
    async with Client([a, b], strategy="race", retry=retry, log=False) as client:
        with pytest.raises(AllProvidersFailed) as info:
            await client.complete("hi")
    assert sorted(e.provider for e in info.value.exceptions) == ["a", "b"]  # type: ignore[union-attr]


async def test_race_retries_after_every_leg_failed() -> None:
    a = FakeProvider("a", replies=[ServerError("a"), "a ok"])
    b = FakeProvider("b", replies=[ServerError("b"), "b ok"])
    retry = RetryPolicy(max_retries=1, base_delay=0.01)
    async with Client([a, b], strategy="race", retry=retry, log=False) as client:
        response = await client.complete("hi")
    assert response.text in ("a ok", "b ok")
    assert len(a.calls) + len(b.calls) == 3  # capped: two legs + one retry


async def test_race_with_first_token_timeout_builds_complete_answers_from_streams(
    looptime: float,
) -> None:
    a = FakeProvider("a", latency=0.5, replies=["a"])
    b = FakeProvider("b", latency=0.2, replies=["b"])
    async with Client([a, b], strategy="race", first_token_timeout=1.0, log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    assert float(looptime) == pytest.approx(0.2, abs=1e-3)
    assert (a.cancelled, a.open_streams) == (1, 0)


async def test_a_failure_seen_after_the_win_starts_nothing(looptime: float) -> None:
    # a fails and b succeeds at the same instant: the race is decided, c must not start.
    a = FakeProvider("a", latency=0.1, replies=[ServerError("down")])
    b = FakeProvider("b", latency=0.1, replies=["b"])
    c = FakeProvider("c", latency=5.0, replies=["c"])
    async with Client([a, b, c], strategy=Race(n=2), log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    assert float(looptime) == pytest.approx(0.1, abs=1e-3)
    assert c.calls == []
