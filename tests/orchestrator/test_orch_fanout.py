"""Fan-out: ordering, error isolation, bounded look-ahead over huge lazy inputs, leaving."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from _orchfakes import other_tasks

from asyncllm import AllProvidersFailed, ChatRequest, Client, InvalidRequestError, ServerError
from asyncllm.orchestrator import Result, RetryPolicy
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime


def by_prompt(request: ChatRequest, i: int) -> FakeReply | Exception:
    """Latency and outcome chosen by the prompt: 'slow:N', 'fail', anything else fast."""
    text = request.messages[-1].text()
    if text == "fail":
        return ServerError("scripted failure")
    if text.startswith("slow:"):
        return FakeReply(tokens=(text,), latency=float(text[5:]))
    return FakeReply(tokens=(text,), latency=0.01)


async def test_unordered_yields_as_they_finish() -> None:
    fake = FakeProvider("a", handler=by_prompt)
    prompts = ["slow:0.3", "slow:0.1", "slow:0.2"]
    async with Client(fake, log=False) as client, client.map(prompts, concurrency=3) as results:
        got = [r async for r in results]
    assert [r.index for r in got] == [1, 2, 0]
    assert [r.response.text for r in got if r.response] == ["slow:0.1", "slow:0.2", "slow:0.3"]
    assert all(r.request == prompts[r.index] for r in got)


async def test_ordered_keeps_input_order(looptime: float) -> None:
    fake = FakeProvider("a", handler=by_prompt)
    prompts = ["slow:0.3", "slow:0.1", "slow:0.2", "x"]
    async with (
        Client(fake, log=False) as client,
        client.map(prompts, concurrency=4, ordered=True) as results,
    ):
        got = [r async for r in results]
    assert [r.index for r in got] == [0, 1, 2, 3]
    assert float(looptime) == pytest.approx(0.3, abs=1e-3)  # still concurrent


async def test_a_failed_request_does_not_stop_the_others() -> None:
    fake = FakeProvider("a", handler=by_prompt)
    prompts = ["a", "fail", 42, "b"]  # 42 is not a valid prompt
    retry = RetryPolicy(max_retries=0)
    async with (
        Client(fake, retry=retry, log=False) as client,
        client.map(prompts, concurrency=2, ordered=True) as results,
    ):
        got: list[Result] = [r async for r in results]
    assert [r.ok for r in got] == [True, False, False, True]
    assert isinstance(got[1].error, AllProvidersFailed)
    assert "scripted failure" in str(got[1].error)
    assert isinstance(got[2].error, InvalidRequestError)
    with pytest.raises(InvalidRequestError):
        got[2].unwrap()
    assert got[3].unwrap().text == "b"


async def test_huge_lazy_input_runs_in_bounded_memory() -> None:
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield f"p{i}"

    fake = FakeProvider("a", handler=by_prompt)
    async with Client(fake, log=False) as client, client.map(endless(), concurrency=8) as results:
        n = 0
        async for r in results:
            n += 1
            assert r.ok
            if n == 50:
                break
        stats = results.statistics()
    # Only what the workers could take: the yielded, the buffered and the in flight.
    assert pulled <= 50 + 8 + 8 + 1
    assert stats["taken"] == pulled
    assert fake.open_streams == 0
    assert not other_tasks()


async def test_ordered_look_ahead_is_bounded_behind_a_slow_item() -> None:
    fake = FakeProvider("a", handler=by_prompt)

    def items() -> Iterator[str]:
        yield "slow:100"
        for i in range(10_000):
            yield f"p{i}"

    async with (
        Client(fake, log=False) as client,
        client.map(items(), concurrency=4, ordered=True, lookahead=10) as results,
    ):
        with anyio.move_on_after(5):  # item 0 takes 100 s: nothing can be yielded
            async for _ in results:
                pytest.fail("item 0 is not done")
        stats = results.statistics()
    assert stats["taken"] == 10  # workers stopped at the look-ahead bound
    assert stats["held"] == 9
    assert fake.cancelled == 1  # the slow one was cancelled on exit


async def test_async_iterable_input() -> None:
    async def prompts() -> AsyncIterator[str]:
        for i in range(20):
            await anyio.sleep(0.001)
            yield f"q{i}"

    fake = FakeProvider("a", handler=by_prompt)
    async with (
        Client(fake, log=False) as client,
        client.map(prompts(), concurrency=5, ordered=True) as results,
    ):
        texts = [r.unwrap().text async for r in results]
    assert texts == [f"q{i}" for i in range(20)]


async def test_breaking_out_cancels_everything_in_flight() -> None:
    fake = FakeProvider("a", handler=by_prompt)
    prompts = ["x"] + ["slow:10"] * 5
    async with Client(fake, log=False) as client, client.map(prompts, concurrency=6) as results:
        async for _ in results:
            break
    assert fake.cancelled == 5
    assert fake.open_streams == 0
    assert not other_tasks()


async def test_caller_cancellation_cancels_the_fan_out() -> None:
    fake = FakeProvider("a", handler=by_prompt)
    async with Client(fake, log=False) as client:
        with anyio.move_on_after(1):
            async with client.map(["slow:10"] * 4, concurrency=4) as results:
                async for _ in results:
                    pytest.fail("nothing finishes in time")
    assert (fake.cancelled, fake.open_streams) == (4, 0)
    assert not other_tasks()


async def test_iterating_without_async_with_is_an_error() -> None:
    fake = FakeProvider("a")
    async with Client(fake, log=False) as client:
        with pytest.raises(RuntimeError, match="async with"):
            async for _ in client.map(["a"]):
                pass


async def test_a_failing_input_iterator_is_raised() -> None:
    def bad() -> Iterator[str]:
        yield "a"
        raise ValueError("input broke")

    fake = FakeProvider("a", handler=by_prompt)
    async with Client(fake, log=False) as client:
        with pytest.raises(ValueError, match="input broke"):
            async with client.map(bad(), concurrency=1) as results:
                async for _ in results:
                    pass


async def test_leaving_while_workers_wait_on_a_full_buffer() -> None:
    fake = FakeProvider("a", handler=by_prompt)
    prompts = [f"p{i}" for i in range(50)]
    async with Client(fake, log=False) as client, client.map(prompts, concurrency=2) as results:
        async for _ in results:
            await anyio.sleep(1)  # the workers fill the buffer and block on it
            break
        assert results.statistics()["taken"] < 10
    assert fake.open_streams == 0
    assert not other_tasks()
