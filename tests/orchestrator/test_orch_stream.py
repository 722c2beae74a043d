"""Streams: fall over before the first token, StreamBroken after it, races and hedges that
commit on the first token, deadlines, leaving early."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from _orchfakes import RecordingLimiter, RecordingObserver, other_tasks

from asyncllm import (
    AllProvidersFailed,
    BadRequest,
    Client,
    ConnectionFailed,
    DeadlineExceeded,
    Response,
    ServerError,
    StreamBroken,
)
from asyncllm.orchestrator import Hedge, Race
from asyncllm.orchestrator._policy import StrategyLike
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

TOKENS = ("one ", "two ", "three")


async def collect(client: Client) -> tuple[list[str], Response | None]:
    async with client.stream("hi") as s:
        texts = [chunk.text async for chunk in s if chunk.text]
    return texts, s.response


async def test_stream_falls_over_before_the_first_token() -> None:
    a = FakeProvider("a", replies=[ServerError("down")])
    b = FakeProvider("b", replies=[FakeReply(tokens=TOKENS)])
    async with Client([a, b], log=False) as client:
        texts, response = await collect(client)
    assert texts == list(TOKENS)
    assert response is not None
    assert response.provider == "b"
    assert response.text == "one two three"
    assert response.usage.output_tokens == 3


async def test_failure_after_open_but_before_content_falls_over() -> None:
    dies_at_once = FakeReply(tokens=TOKENS, error=ConnectionFailed("reset"), fail_after=0)
    a = FakeProvider("a", replies=[dies_at_once])
    b = FakeProvider("b", replies=["b"])
    async with Client([a, b], log=False) as client:
        texts, _ = await collect(client)
    assert texts == ["b"]
    assert a.open_streams == 0


async def test_failure_after_commit_raises_stream_broken_with_partial_text() -> None:
    breaks = FakeReply(tokens=TOKENS, error=ServerError("gone"), fail_after=2)
    a = FakeProvider("a", replies=[breaks])
    b = FakeProvider("b", replies=["never"])
    observer = RecordingObserver()
    async with Client([a, b], log=False, observers=[observer]) as client:
        seen: list[str] = []
        with pytest.raises(StreamBroken) as info:
            async with client.stream("hi") as s:
                async for chunk in s:
                    seen.append(chunk.text)
    assert seen == ["one ", "two "]
    assert info.value.partial_text == "one two "
    assert info.value.chunks_received == 2
    assert b.calls == []  # a committed stream is never restarted elsewhere
    assert a.open_streams == 0
    assert observer.outcomes() == [("a", "primary", "error")]


async def test_stream_bad_request_raises_from_async_with() -> None:
    a = FakeProvider("a", replies=[BadRequest("nope", status_code=400)])
    async with Client(a, log=False) as client:
        with pytest.raises(BadRequest):
            async with client.stream("hi"):
                pytest.fail("never entered")


async def test_race_stream_commits_on_the_first_token_not_the_headers(looptime: float) -> None:
    # a answers headers first but its first token is late; b's first token comes first.
    a = FakeProvider("a", replies=[FakeReply(tokens=("", "late"), latency=0.05, token_delay=1.0)])
    b = FakeProvider("b", replies=[FakeReply(tokens=("fast", "er"), latency=0.2)])
    async with Client([a, b], strategy="race", log=False) as client, client.stream("hi") as s:
        assert float(looptime) == pytest.approx(0.2, abs=1e-3)
        assert s.provider == "b"
        texts = [c.text async for c in s if c.text]
    assert texts == ["fast", "er"]
    assert s.response is not None and s.response.provider == "b"
    assert (a.cancelled, a.open_streams) == (1, 0)
    assert not other_tasks()


async def test_hedge_stream_hedges_on_time_to_first_token(looptime: float) -> None:
    slow_first = FakeReply(tokens=("", "slow"), latency=0.05, token_delay=2.0)
    a = FakeProvider("a", replies=[slow_first])
    b = FakeProvider("b", replies=[FakeReply(tokens=("quick",), latency=0.1)])
    observer = RecordingObserver()
    async with Client([a, b], strategy=Hedge(delay=0.3), log=False, observers=[observer]) as client:
        texts, _ = await collect(client)
    assert texts == ["quick"]
    # Hedged 0.3 s after a was admitted (its headers came at 0.05 but no token).
    assert float(looptime) == pytest.approx(0.4, abs=1e-3)
    assert ("a", "primary", "lost") in observer.outcomes()
    assert a.open_streams == b.open_streams == 0


async def test_race_stream_all_fail_before_commit() -> None:
    a = FakeProvider("a", replies=[ServerError("a")])
    b = FakeProvider("b", replies=[ServerError("b")])
    async with Client([a, b], strategy=Race(), log=False) as client:
        with pytest.raises(AllProvidersFailed):
            async with client.stream("hi"):
                pytest.fail("never entered")
    assert not other_tasks()


async def test_race_stream_broken_after_commit() -> None:
    breaks = FakeReply(tokens=TOKENS, error=ServerError("gone"), fail_after=1, latency=0.1)
    a = FakeProvider("a", replies=[breaks])
    b = FakeProvider("b", latency=1.0)
    async with Client([a, b], strategy="race", log=False) as client:
        with pytest.raises(StreamBroken) as info:
            await collect(client)
    assert info.value.partial_text == "one "
    assert a.open_streams == b.open_streams == 0


@pytest.mark.parametrize("strategy", ["fallback", "race"])
async def test_deadline_during_a_committed_stream(strategy: StrategyLike, looptime: float) -> None:
    slow = FakeReply(tokens=tuple(f"t{i} " for i in range(10)), token_delay=0.3)
    a = FakeProvider("a", replies=[slow])
    b = FakeProvider("b", latency=5.0)
    async with Client([a, b], strategy=strategy, timeout=1.0, log=False) as client:
        seen: list[str] = []
        with pytest.raises(StreamBroken) as info:
            async with client.stream("hi") as s:
                async for chunk in s:
                    seen.append(chunk.text)
    assert float(looptime) == pytest.approx(1.0, abs=1e-3)
    assert info.value.partial_text == "".join(seen) != ""
    assert isinstance(info.value.__cause__, DeadlineExceeded)
    assert a.open_streams == b.open_streams == 0


async def test_deadline_before_the_first_token(looptime: float) -> None:
    a = FakeProvider("a", latency=5.0)
    async with Client(a, timeout=1.0, log=False) as client:
        with pytest.raises(DeadlineExceeded):
            async with client.stream("hi"):
                pytest.fail("never entered")
    assert float(looptime) == pytest.approx(1.0, abs=1e-3)
    assert a.open_streams == 0


@pytest.mark.parametrize("strategy", ["fallback", "race", "hedge"])
async def test_leaving_early_closes_everything(strategy: StrategyLike) -> None:
    many = FakeReply(tokens=tuple(f"t{i}" for i in range(100)), token_delay=0.01)
    a = FakeProvider("a", replies=[many])
    b = FakeProvider("b", replies=[many], latency=0.5)
    limiter = RecordingLimiter()
    observer = RecordingObserver()
    async with Client(
        [a, b],
        strategy=strategy,
        limits={"a": limiter},
        log=False,
        observers=[observer],
    ) as client:
        async with client.stream("hi") as s:
            async for chunk in s:
                if chunk.text == "t3":
                    break
        assert s.response is None
    assert a.open_streams == b.open_streams == 0
    assert a.cancelled == 1
    assert limiter.in_use == 0
    assert ("a", "primary" if strategy != "race" else "race", "cancelled") in observer.outcomes()
    assert not other_tasks()


async def test_stream_permit_is_released_when_the_stream_ends_not_on_exit() -> None:
    a = FakeProvider("a", replies=[FakeReply(tokens=TOKENS)])
    limiter = RecordingLimiter()
    async with Client(a, limits={"a": limiter}, log=False) as client, client.stream("hi") as s:
        async for _ in s:
            pass
        assert limiter.in_use == 0  # released at the last chunk
        await anyio.lowlevel.checkpoint()
    assert s.response is not None and s.response.text == "one two three"
