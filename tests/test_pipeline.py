"""One pipeline, one direction: every request is bracketed (id bound, observers told once)
above the cache, its model is resolved once, its deadline covers the whole request, and
retry/hedge tokens are an allowance, not a budget."""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from typing import Any

import anyio
import pytest

from asyncllm import (
    Client,
    ConfigurationError,
    DeadlineExceeded,
    Hedge,
    ResponseCache,
    RetryPolicy,
    ServerError,
    StreamBroken,
)
from asyncllm.abc import AttemptInfo, NoBudget, RequestInfo
from asyncllm.orchestrator import current_request_id
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime


class Recorder:
    """Every observer event, in order, with the request id bound when it happened."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self.infos: dict[str, RequestInfo] = {}

    def request_started(self, info: RequestInfo) -> None:
        self.infos[info.request_id] = info
        self.events.append(("request_started", info.request_id, current_request_id()))

    def attempt_started(self, info: AttemptInfo) -> None:
        self.events.append(("attempt_started", info.request_id, info.model))

    def attempt_first_token(self, info: AttemptInfo) -> None:
        pass

    def attempt_finished(self, info: AttemptInfo, response: object, error: object) -> None:
        self.events.append(("attempt_finished", info.request_id, info.outcome))

    def request_finished(
        self, info: RequestInfo, response: Any, error: BaseException | None
    ) -> None:
        what = "ok" if response is not None else type(error).__name__ if error else "abandoned"
        self.events.append(("request_finished", info.request_id, what))

    def finished(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for kind, rid, what in self.events:
            if kind == "request_finished":
                out.setdefault(rid, []).append(what)
        return out


class SpyCache(ResponseCache):
    """A ResponseCache that records the request id bound and the route it is asked with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str | None, Any]] = []

    async def complete(self, request: Any, route: Any, call: Any, **kw: Any) -> Any:
        self.seen.append((current_request_id(), route))
        return await super().complete(request, route, call, **kw)

    def stream(self, request: Any, route: Any, open_stream: Any, **kw: Any) -> Any:
        self.seen.append((current_request_id(), route))
        return super().stream(request, route, open_stream, **kw)


async def test_the_request_id_is_bound_above_the_cache_and_a_hit_carries_it() -> None:
    rec = Recorder()
    cache = SpyCache()
    provider = FakeProvider("p", model="m1")
    async with Client(provider, cache=cache, observers=[rec], log=False) as client:
        miss = await client.complete("hi", temperature=0)
        hit = await client.complete("hi", temperature=0)
        async with client.stream("hi", temperature=0) as s:
            assert "".join([c.text async for c in s]) == hit.text
        assert current_request_id() is None  # unbound after each request
    # The cache ran inside each request's bracket: the id it saw is the request's.
    assert [rid for rid, _ in cache.seen] == [miss.request_id, hit.request_id, s.request_id]
    assert len({miss.request_id, hit.request_id, s.request_id}) == 3
    assert all(rid == seen for kind, rid, seen in rec.events if kind == "request_started")
    assert rec.finished() == {miss.request_id: ["ok"], hit.request_id: ["ok"], s.request_id: ["ok"]}
    assert [rec.infos[r].cached for r in (miss.request_id, hit.request_id, s.request_id)] == [
        False,
        True,
        True,
    ]
    assert rec.infos[hit.request_id].attempts == 0 and rec.infos[miss.request_id].attempts == 1


async def test_a_follower_cancelled_while_waiting_on_a_shared_call_is_reported() -> None:
    rec = Recorder()
    provider = FakeProvider("p", model="m1", latency=5.0)
    async with Client(provider, cache=ResponseCache(), observers=[rec], log=False) as client:
        answers = []

        async def leader() -> None:
            answers.append(await client.complete("same", temperature=0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await anyio.sleep(1)
            with anyio.move_on_after(1):  # the follower leaves while waiting
                await client.complete("same", temperature=0)
    finished = rec.finished()
    assert len(finished) == 2 and answers[0].text
    assert sorted(v for [v] in finished.values()) == ["CancelledError", "ok"]
    assert len(provider.calls) == 1


async def test_the_total_timeout_covers_the_wait_on_a_shared_call() -> None:
    provider = FakeProvider("p", model="m1", latency=10.0)
    async with Client(provider, cache=ResponseCache(), log=False) as client:
        results: list[object] = []

        async def leader() -> None:
            results.append(await client.complete("same", temperature=0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await anyio.sleep(1)
            started = anyio.current_time()
            with pytest.raises(DeadlineExceeded):
                await client.complete("same", temperature=0, timeout=2.0)
            assert anyio.current_time() - started == pytest.approx(2.0, abs=0.01)
    assert len(results) == 1  # the leader, who set no timeout, still got its answer
    assert len(provider.calls) == 1


async def test_the_model_is_resolved_once_and_seen_alike_by_cache_budget_observers() -> None:
    rec = Recorder()
    cache = SpyCache()
    budget = ModelSpy()
    a = FakeProvider("a", model="model-a", replies=[ServerError("down")])
    b = FakeProvider("b", model="model-b")
    async with Client([a, b], cache=cache, budget=budget, observers=[rec], log=False) as client:
        first = await client.complete("hi", temperature=0)
        second = await client.complete("hi", temperature=0, model="shared")
    ((_, route_default), (_, route_named)) = cache.seen
    assert route_default == (("a", "fake", "model-a"), ("b", "fake", "model-b"))
    assert route_named == (("a", "fake", "shared"), ("b", "fake", "shared"))
    attempts = [(rid, model) for kind, rid, model in rec.events if kind == "attempt_started"]
    assert attempts == [
        (first.request_id, "model-a"),
        (first.request_id, "model-b"),
        (second.request_id, "shared"),
        (second.request_id, "shared"),
    ]
    assert budget.models == ["model-a", "model-b", "shared", "shared"]


class ModelSpy(NoBudget):
    """A budget that never refuses and records the model of every reservation."""

    def __init__(self) -> None:
        self.models: list[str] = []

    def reserve(self, request: Any, **kw: Any) -> Any:
        self.models.append(kw["model"])
        return super().reserve(request, **kw)


async def test_a_request_no_provider_has_a_model_for_is_refused_before_anything_runs() -> None:
    rec = Recorder()
    cache = SpyCache()
    provider = FakeProvider("p", model=None)
    async with Client(provider, cache=cache, observers=[rec], log=False) as client:
        with pytest.raises(ConfigurationError, match="no default model"):
            await client.complete("hi", temperature=0)
        with pytest.raises(ConfigurationError, match="no default model"):
            async with client.stream("hi", temperature=0):
                pass
        with pytest.raises(ConfigurationError, match="no default model"):
            client.route(client_request("hi"))
    assert rec.events == [] and cache.seen == []


def client_request(prompt: str) -> Any:
    from asyncllm import build_request

    return build_request(prompt, {})


async def test_a_broken_stream_caught_inside_the_block_is_reported_as_its_error() -> None:
    rec = Recorder()
    provider = FakeProvider(
        "p",
        model="m1",
        replies=[FakeReply(tokens=("a", "b", "c"), error=OSError("cut"), fail_after=1)],
    )
    async with Client(provider, observers=[rec], log=False) as client, client.stream("hi") as s:
        with pytest.raises(StreamBroken):
            async for _ in s:
                pass
    assert rec.finished() == {s.request_id: ["StreamBroken"]}


async def test_a_stream_read_to_its_end_is_a_success_whatever_the_block_does_after() -> None:
    rec = Recorder()
    async with Client(FakeProvider("p", model="m1"), observers=[rec], log=False) as client:
        with pytest.raises(KeyError):
            async with client.stream("hi") as s:
                async for _ in s:
                    pass
                raise KeyError("the caller's own error")
    assert rec.finished() == {s.request_id: ["ok"]}


def test_retry_and_hedge_tokens_are_an_allowance_and_the_old_names_still_work() -> None:
    assert Hedge(allowance=0.2).allowance == 0.2
    assert RetryPolicy(allowance_burst=3).allowance_burst == 3
    with pytest.warns(DeprecationWarning, match=r"Hedge\(allowance=\.\.\.\)"):
        hedge = Hedge(budget=0.2)
    assert hedge.allowance == 0.2 and hedge == Hedge(allowance=0.2)
    with pytest.warns(DeprecationWarning, match="allowance_burst"):
        retry = RetryPolicy(budget_burst=3, allowance_ratio=0.5)
    assert (retry.allowance_burst, retry.allowance_ratio) == (3, 0.5)
    with pytest.raises(ConfigurationError, match="allowance"):
        Hedge(allowance=-1)
    # The old names are not fields: replace(), equality and repr see the new ones only.
    assert dataclasses.replace(hedge, allowance=0.5).allowance == 0.5
    assert dataclasses.replace(retry, allowance_burst=7).allowance_burst == 7
    assert "budget" not in repr(hedge) and pickle.loads(pickle.dumps(hedge)) == hedge
    with pytest.warns(DeprecationWarning, match=r"Hedge\.budget"):
        assert hedge.budget == 0.2  # reading the old name works, and warns
    with pytest.raises(ConfigurationError, match="keep allowance"):
        Hedge(allowance=0.3, budget=0.2)  # both names: which one? refused
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Hedge()
        RetryPolicy()  # the new names warn about nothing


async def test_statistics_name_the_allowances_and_keep_the_old_keys_as_aliases() -> None:
    async with Client(FakeProvider("p", model="m1"), strategy=Hedge(delay=1), log=False) as client:
        await client.complete("hi")
        stats = client.statistics()
    assert stats["retry_allowance"]["capacity"] == RetryPolicy().allowance_burst
    assert list(stats["hedge_allowance"]) == ["0.05/10"]
    assert stats["retry_budget"] is stats["retry_allowance"]
    assert stats["hedge_budget"] is stats["hedge_allowance"]


async def test_an_answer_in_time_is_kept_when_only_the_cache_write_runs_past_the_deadline() -> None:
    """Cache not entered: the caller hosts the shared call, storing included. A slow write
    must not turn the paid-for answer into DeadlineExceeded."""
    from asyncllm.cache import MemoryBackend

    class SlowWrite(MemoryBackend):
        async def _set(self, *args: Any, **kwargs: Any) -> Any:
            await anyio.sleep(0.3)
            return await super()._set(*args, **kwargs)

    provider = FakeProvider("p", model="m1", latency=0.1)
    client = Client(provider, cache=ResponseCache(SlowWrite()), log=False)  # not entered
    try:
        response = await client.complete("hi", temperature=0, timeout=0.25)
    finally:
        await client.aclose()
    assert response.text and not response.cached and len(provider.calls) == 1


async def test_a_follower_outliving_the_leaders_deadline_asks_again() -> None:
    """The leader's own timeout ends the shared call; a follower with time left is not
    failed by someone else's deadline: it asks again (and leads a call of its own)."""
    rec = Recorder()
    provider = FakeProvider("p", model="m1", latency=1.0)
    async with Client(provider, cache=ResponseCache(), observers=[rec], log=False) as client:
        out: dict[str, Any] = {}

        async def leader() -> None:
            with pytest.raises(DeadlineExceeded):
                await client.complete("same", temperature=0, timeout=0.5)

        async def follower() -> None:
            await anyio.sleep(0.1)
            out["follower"] = await client.complete("same", temperature=0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            tg.start_soon(follower)
    assert out["follower"].text and len(provider.calls) == 2
    assert sorted(v for [v] in rec.finished().values()) == ["DeadlineExceeded", "ok"]


async def test_a_stream_following_a_slower_identical_stream_keeps_its_own_deadline() -> None:
    """The follower's total timeout ends its wait for the next shared chunk, for it alone:
    the leader reads on, the answer is stored, and each is reported once."""
    rec = Recorder()
    provider = FakeProvider("p", model="m1", latency=0.0, token_delay=1.0)
    async with Client(provider, cache=ResponseCache(), observers=[rec], log=False) as client:
        out: dict[str, Any] = {}

        async def leader() -> None:
            async with client.stream("same", temperature=0) as s:
                out["leader"] = "".join([c.text async for c in s])

        async def follower() -> None:
            await anyio.sleep(0.1)
            started = anyio.current_time()
            got: list[str] = []
            with pytest.raises(DeadlineExceeded):
                async with client.stream("same", temperature=0, timeout=1.5) as s:
                    async for c in s:
                        got.append(c.text)
            out["follower waited"] = anyio.current_time() - started
            out["follower got"] = got

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            tg.start_soon(follower)
        async with client.stream("same", temperature=0) as s:
            hit = "".join([c.text async for c in s])
    assert out["follower waited"] == pytest.approx(1.5, abs=0.01)
    assert 0 < len(out["follower got"]) < 4  # some shared chunks came, not the end
    assert out["leader"] == hit == "Hello, world!"
    assert len(provider.calls) == 1
    assert sorted(v for [v] in rec.finished().values()) == ["DeadlineExceeded", "ok", "ok"]


async def test_a_stream_waiting_for_an_identical_stream_to_open_keeps_its_own_deadline() -> None:
    rec = Recorder()
    provider = FakeProvider("p", model="m1", latency=5.0)
    async with Client(provider, cache=ResponseCache(), observers=[rec], log=False) as client:
        out: dict[str, Any] = {}

        async def leader() -> None:
            async with client.stream("same", temperature=0) as s:
                out["leader"] = "".join([c.text async for c in s])

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await anyio.sleep(0.1)
            started = anyio.current_time()
            with pytest.raises(DeadlineExceeded):
                async with client.stream("same", temperature=0, timeout=1.0):
                    pytest.fail("the follower's stream opened after its deadline")
            assert anyio.current_time() - started == pytest.approx(1.0, abs=0.01)
    assert out["leader"] == "Hello, world!" and len(provider.calls) == 1
    assert sorted(v for [v] in rec.finished().values()) == ["DeadlineExceeded", "ok"]


async def test_an_answer_that_does_not_fit_response_format_is_a_delivered_request() -> None:
    """Validation against a pydantic ``response_format`` is the caller's check, above the
    request: the observers see a request that was answered, complete or stream alike, and
    the caller gets StructuredOutputError with the raw text."""
    import pydantic

    from asyncllm import StructuredOutputError

    class Answer(pydantic.BaseModel):
        value: int

    rec = Recorder()
    provider = FakeProvider("p", model="m1", replies=[FakeReply(tokens=("not json",))])
    async with Client(provider, observers=[rec], log=False) as client:
        with pytest.raises(StructuredOutputError):
            await client.complete("hi", response_format=Answer)
        with pytest.raises(StructuredOutputError):
            async with client.stream("hi", response_format=Answer) as s:
                async for _ in s:
                    pass
    assert sorted(v for [v] in rec.finished().values()) == ["ok", "ok"]


async def test_a_client_closed_while_its_first_request_opens_it_stays_closed() -> None:
    from asyncllm.cost import Prices

    entered, release = anyio.Event(), anyio.Event()

    class SlowPrices(Prices):
        async def aload(self) -> None:
            entered.set()
            await release.wait()

    client = Client(FakeProvider("f"), pricing=SlowPrices())
    errors: list[BaseException] = []

    async def first() -> None:
        try:
            await client.complete("hi")
        except RuntimeError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await entered.wait()
        await client.aclose()
        release.set()
    assert [str(e) for e in errors] == ["this Client is closed"]
    with pytest.raises(RuntimeError, match="this Client is closed"):
        await client.complete("after")


@pytest.mark.parametrize("cache", [False, True])
async def test_an_abandoned_request_reports_its_attempts_end_before_its_own(cache: bool) -> None:
    # With a cache the attempt runs in the cache's task (shared with identical calls); a
    # caller that leaves must still see its attempt end before the request does (a trace's
    # attempt span inside its request span), as without a cache.
    events: list[str] = []

    class Order:
        def request_started(self, info: RequestInfo) -> None:
            events.append("request_started")

        def attempt_started(self, info: AttemptInfo) -> None:
            events.append("attempt_started")

        def attempt_first_token(self, info: AttemptInfo) -> None:
            pass

        def attempt_finished(self, info: AttemptInfo, response: Any, error: Any) -> None:
            events.append("attempt_finished")

        def request_finished(self, info: RequestInfo, response: Any, error: Any) -> None:
            events.append("request_finished")

    slow = FakeReply(tokens=tuple(f"t{i} " for i in range(10)), token_delay=0.05)
    want = ["request_started", "attempt_started", "attempt_finished", "request_finished"]
    async with Client(
        FakeProvider("p", replies=[slow]), cache=cache, observers=[Order()], log=False
    ) as client:
        async with client.stream("a stream left early", temperature=0) as s:
            async for _ in s:
                break
        assert events == want
        events.clear()
        with anyio.move_on_after(0.02):
            await client.complete("a call given up", temperature=0)
        assert events == want


async def test_a_caller_leaving_a_shared_call_is_not_held_up_by_a_slow_unwind() -> None:
    # The wait for the cancelled shared call to unwind is bounded short: an upstream that
    # takes seconds to clean up does not hold up the caller's cancellation.
    class SlowToUnwind(FakeProvider):
        async def complete(self, request: Any) -> Any:
            try:
                await anyio.sleep(10)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(2)
            raise AssertionError("unreachable")

    async with Client(SlowToUnwind("p"), cache=True, log=False) as client:
        started = anyio.current_time()
        with anyio.move_on_after(0.2):
            await client.complete("x", temperature=0)
        assert anyio.current_time() - started < 0.2 + 0.5
