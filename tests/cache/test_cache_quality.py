"""The cache and answer quality: a rejected answer is never stored, shared or replayed; a
stored answer this call's predicate rejects is not served. And every request, hit or miss,
complete or stream, reaches the observers exactly once (issue 12: streamed hits did not)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from asyncllm import AllProvidersFailed, AnswerRejected, Client, Response
from asyncllm.abc import AttemptInfo, RequestInfo
from asyncllm.cache import ResponseCache
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime


def no_hello(response: Response) -> str | None:
    return "greeting: says hello" if "Hello" in response.text else None


HELLO = FakeReply(tokens=("Hello", " there"))
FINE = FakeReply(tokens=("Fine", " thanks"))


async def test_a_rejected_answer_is_never_stored() -> None:
    provider = FakeProvider(replies=[HELLO])
    cache = ResponseCache()
    async with Client(provider, cache=cache, accept=no_hello, log=False) as client:
        with pytest.raises(AllProvidersFailed):
            await client.complete("hi", temperature=0)
        first = await client.complete("hi", temperature=0, accept=[])
        again = await client.complete("hi", temperature=0, accept=[])
    assert not first.cached and again.cached
    assert len(provider.calls) == 4  # rejected (and retried twice), then the answer stored
    assert cache.statistics()["stored"] == 1


async def test_callers_sharing_a_rejected_call_all_fail_and_nothing_is_stored() -> None:
    provider = FakeProvider(replies=[HELLO], latency=1.0)
    errors: list[BaseException] = []
    async with Client(provider, cache=ResponseCache(), accept=no_hello, log=False) as client:

        async def one() -> None:
            try:
                await client.complete("hi", temperature=0)
            except AllProvidersFailed as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        calls = len(provider.calls)
        later = await client.complete("hi", temperature=0, accept=[])
    assert len(errors) == 3 and calls == 3  # one shared call, retried: 3 attempts in all
    assert not later.cached


async def test_a_follower_with_a_stricter_predicate_does_not_take_the_shared_answer() -> None:
    provider = FakeProvider(replies=[HELLO, FINE], latency=1.0)
    got: dict[str, Response] = {}
    async with Client(provider, cache=ResponseCache(), log=False) as client:

        async def lenient() -> None:
            got["lenient"] = await client.complete("hi", temperature=0)

        async def strict() -> None:
            await anyio.sleep(0.5)  # joins the lenient call in flight
            got["strict"] = await client.complete("hi", temperature=0, accept=no_hello)

        async with anyio.create_task_group() as tg:
            tg.start_soon(lenient)
            tg.start_soon(strict)
    assert got["lenient"].text == "Hello there"
    assert got["strict"].text == "Fine thanks" and not got["strict"].cached
    assert len(provider.calls) == 2


async def test_a_stored_answer_the_predicate_rejects_is_not_served() -> None:
    provider = FakeProvider(replies=[HELLO, FINE])
    async with Client(provider, cache=ResponseCache(), log=False) as client:
        await client.complete("hi", temperature=0)  # stores "Hello there"
        strict = await client.complete("hi", temperature=0, accept=no_hello)
        after = await client.complete("hi", temperature=0)
    assert strict.text == "Fine thanks" and not strict.cached
    assert after.cached and after.text == "Fine thanks"  # the refresh replaced the entry


async def test_a_rejected_stream_is_not_stored_nor_replayed() -> None:
    provider = FakeProvider(replies=[HELLO, FINE])
    async with Client(provider, cache=ResponseCache(), accept=no_hello, log=False) as client:
        with pytest.raises(AnswerRejected):
            async with client.stream("hi", temperature=0) as s:
                async for _ in s:
                    pass
        async with client.stream("hi", temperature=0) as s:
            text = "".join([c.text async for c in s])
        assert s.response is not None and not s.response.cached
        hit = await client.complete("hi", temperature=0)
    assert text == "Fine thanks" and hit.cached and hit.text == "Fine thanks"
    assert len(provider.calls) == 2


async def test_a_stored_answer_is_not_replayed_to_a_stream_that_rejects_it() -> None:
    provider = FakeProvider(replies=[HELLO, FINE])
    async with Client(provider, cache=ResponseCache(), log=False) as client:
        await client.complete("hi", temperature=0)
        async with client.stream("hi", temperature=0, accept=no_hello) as s:
            text = "".join([c.text async for c in s])
    assert text == "Fine thanks" and len(provider.calls) == 2


async def test_a_followed_stream_the_follower_rejects_raises_at_its_end() -> None:
    provider = FakeProvider(replies=[HELLO], latency=0.5, token_delay=0.5)
    got: dict[str, Any] = {}
    async with Client(provider, cache=ResponseCache(), log=False) as client:

        async def lenient() -> None:
            async with client.stream("hi", temperature=0) as s:
                got["lenient"] = "".join([c.text async for c in s])

        async def strict() -> None:
            await anyio.sleep(0.6)
            with pytest.raises(AnswerRejected) as info:
                async with client.stream("hi", temperature=0, accept=no_hello) as s:
                    async for _ in s:
                        pass
            got["strict"] = (s.response, info.value.reason)

        async with anyio.create_task_group() as tg:
            tg.start_soon(lenient)
            tg.start_soon(strict)
    assert got["lenient"] == "Hello there"
    assert got["strict"] == (None, "greeting: says hello")
    assert len(provider.calls) == 1


async def test_followers_of_a_rejected_shared_stream_get_the_rejection() -> None:
    provider = FakeProvider(replies=[HELLO], latency=0.5, token_delay=0.5)
    outcomes: list[str] = []
    async with Client(provider, cache=ResponseCache(), accept=no_hello, log=False) as client:

        async def reader(delay: float) -> None:
            await anyio.sleep(delay)
            try:
                async with client.stream("hi", temperature=0) as s:
                    async for _ in s:
                        pass
                outcomes.append("ok")
            except AnswerRejected:
                outcomes.append("rejected")

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader, 0.0)
            tg.start_soon(reader, 0.6)
    assert outcomes == ["rejected", "rejected"] and len(provider.calls) == 1


class Recorder:
    """Counts what each request id told the observers."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}
        self.finished: dict[str, list[Any]] = {}
        self.infos: dict[str, RequestInfo] = {}

    def request_started(self, info: RequestInfo) -> None:
        self.started[info.request_id] = self.started.get(info.request_id, 0) + 1
        self.infos[info.request_id] = info

    def attempt_started(self, info: AttemptInfo) -> None:
        pass

    def attempt_first_token(self, info: AttemptInfo) -> None:
        pass

    def attempt_finished(self, info: AttemptInfo, response: object, error: object) -> None:
        pass

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        self.finished.setdefault(info.request_id, []).append((response, error))

    def exactly_once(self) -> None:
        assert set(self.started) == set(self.finished)
        assert all(n == 1 for n in self.started.values())
        assert all(len(v) == 1 for v in self.finished.values())

    def kinds(self) -> list[tuple[str, bool, str]]:
        out = []
        for rid, [(response, _error)] in self.finished.items():
            info = self.infos[rid]
            what = "ok" if response is not None else info.extra.get("outcome", "error")
            out.append(("cache" if info.cached else info.strategy, info.stream, what))
        return sorted(out)


async def test_every_request_hit_or_miss_reaches_the_observers_exactly_once() -> None:
    rec = Recorder()
    provider = FakeProvider(replies=[FakeReply(tokens=("a", "b", "c"))])
    async with Client(provider, cache=ResponseCache(), observers=[rec], log=False) as client:
        miss = await client.complete("one", temperature=0)
        hit = await client.complete("one", temperature=0)
        async with client.stream("one", temperature=0) as s:  # a streamed hit
            assert s.request_id is not None
            streamed = "".join([c.text async for c in s])
        hit_id = s.request_id
        async with client.stream("two", temperature=0) as s:  # a streamed miss
            assert "".join([c.text async for c in s]) == "abc"
        async with client.stream("two", temperature=0) as s:  # a hit left early
            async for _ in s:
                break
        metrics = client.statistics()["metrics"]["requests"]
    assert streamed == "abc" and hit.cached and not miss.cached
    rec.exactly_once()
    assert rec.kinds() == [
        ("cache", False, "ok"),
        ("cache", True, "ok"),
        ("fallback", False, "ok"),
        ("fallback", True, "abandoned"),  # a hit left early: not answered, not "cached"
        ("fallback", True, "ok"),
    ]
    assert rec.finished[hit_id][0][0].request_id == hit_id
    # A hit is reported with the strategy it was asked with, and no attempt.
    assert {(i.strategy, i.attempts) for i in rec.infos.values() if i.cached} == {("fallback", 0)}
    assert metrics["started"] == 5 and metrics["cache_hits"] == 2
    assert metrics["succeeded"] == 4 and metrics["abandoned"] == 1


async def test_stream_followers_reach_the_observers_once_each() -> None:
    rec = Recorder()
    provider = FakeProvider(replies=[FakeReply(tokens=("a", "b"))], latency=0.5, token_delay=1)
    async with Client(provider, cache=ResponseCache(), observers=[rec], log=False) as client:

        async def reader(delay: float) -> None:
            await anyio.sleep(delay)
            async with client.stream("same", temperature=0) as s:
                async for _ in s:
                    pass

        async with anyio.create_task_group() as tg:
            for delay in (0.0, 0.6, 0.7):
                tg.start_soon(reader, delay)
    rec.exactly_once()
    assert rec.kinds() == [("cache", True, "ok"), ("cache", True, "ok"), ("fallback", True, "ok")]
    assert len(provider.calls) == 1
