"""FakeProvider: scripted replies, handler, errors, counters, fake-clock latency, cancellation."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from asyncllm import ChatRequest, Message, RateLimitInfo, Usage
from asyncllm._exceptions import (
    ConfigurationError,
    ProviderError,
    RateLimited,
    ServerError,
    StreamBroken,
)
from asyncllm.testing import Constant, FakeProvider, FakeReply, Mixture

pytestmark = pytest.mark.looptime


def req(text: str = "hello", **kw: object) -> ChatRequest:
    return ChatRequest(messages=(Message(role="user", content=text),), **kw)  # type: ignore[arg-type]


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_replies_play_in_order_and_the_last_repeats() -> None:
    fake = FakeProvider(replies=["one", FakeReply(tokens=("t", "w", "o")), "last"])
    texts = [(await fake.complete(req())).text for _ in range(5)]
    assert texts == ["one", "two", "last", "last", "last"]
    assert len(fake.calls) == 5
    assert (fake.started, fake.completed, fake.failed, fake.cancelled) == (5, 5, 0, 0)
    assert fake.open_streams == 0


async def test_stream_yields_chunks_then_usage_and_finish() -> None:
    fake = FakeProvider(replies=[FakeReply(tokens=("a", "b", "c"), finish_reason="length")])
    r = req("x" * 70)
    async with fake.stream(r) as s:
        chunks = [c async for c in s]
        assert s.model == "fake-model"
    assert [c.text for c in chunks] == ["a", "b", "c", ""]
    last = chunks[-1]
    assert last.finish_reason == "length"
    assert last.usage == Usage(input_tokens=r.estimated_input_tokens(), output_tokens=3)


async def test_reply_overrides_model_usage_and_rate_limits() -> None:
    info = RateLimitInfo(limit_requests=10, remaining_requests=9)
    reply = FakeReply(tokens=("x",), model="other", usage=Usage(1, 2), rate_limits=info)
    fake = FakeProvider(replies=[reply])
    resp = await fake.complete(req(model="asked"))
    assert resp.model == "other"
    assert resp.usage == Usage(1, 2)
    assert resp.rate_limits == info
    assert fake.calls[0].model == "asked"


async def test_request_model_wins_over_default() -> None:
    fake = FakeProvider()
    assert (await fake.complete(req(model="m2"))).model == "m2"
    with pytest.raises(ConfigurationError):
        await FakeProvider(model=None).complete(req())


async def test_handler_sees_request_and_index() -> None:
    seen: list[tuple[str, int]] = []

    def handler(request: ChatRequest, i: int) -> FakeReply | str | Exception:
        seen.append((request.messages[0].text(), i))
        return ServerError("boom") if i == 1 else f"reply {i}"

    fake = FakeProvider(handler=handler)
    assert (await fake.complete(req("a"))).text == "reply 0"
    with pytest.raises(ServerError):
        await fake.complete(req("b"))
    assert (await fake.complete(req("c"))).text == "reply 2"
    assert seen == [("a", 0), ("b", 1), ("c", 2)]
    assert fake.failed == 1 and fake.completed == 2


async def test_error_at_open_is_a_bound_copy() -> None:
    err = RateLimited("slow down", retry_after=2.0)
    fake = FakeProvider("p1", replies=[err])
    with pytest.raises(RateLimited) as ei:
        async with fake.stream(req(model="m")):
            pytest.fail("the stream must not open")
    assert ei.value is not err  # scripted errors are reusable: each raise is a copy
    assert (ei.value.provider, ei.value.model, ei.value.retry_after) == ("p1", "m", 2.0)
    assert err.provider == ""
    assert fake.failed == 1 and fake.open_streams == 0 and fake.cancelled == 0


async def test_error_mid_stream_becomes_stream_broken_with_partial_text() -> None:
    reply = FakeReply(tokens=("Hel", "lo", " there"), error=ServerError("reset"), fail_after=2)
    fake = FakeProvider(replies=[reply])
    got: list[str] = []
    with pytest.raises(StreamBroken) as ei:
        async with fake.stream(req()) as s:
            async for c in s:
                got.append(c.text)
    assert got == ["Hel", "lo"]
    assert ei.value.partial_text == "Hello"
    assert ei.value.chunks_received == 2
    assert isinstance(ei.value.__cause__, ServerError)
    assert fake.failed == 1 and fake.completed == 0 and fake.open_streams == 0


async def test_error_before_any_chunk_is_raised_as_is() -> None:
    fake = FakeProvider(replies=[FakeReply(error=ServerError("x"), fail_after=0)])
    with pytest.raises(ServerError) as ei:
        await fake.complete(req())
    assert not isinstance(ei.value, StreamBroken)
    assert isinstance(ei.value, ProviderError)


async def test_latency_and_token_delay_on_the_fake_clock() -> None:
    fake = FakeProvider(latency=2.0, token_delay=0.25)
    t0 = now()
    async with fake.stream(req()) as s:
        assert now() - t0 == pytest.approx(2.0)  # headers after the latency
        stamps = [now() - t0 async for _ in s]
    # Four tokens: the first at 2.0, then one every 0.25 s; the usage chunk right after.
    assert stamps == pytest.approx([2.0, 2.25, 2.5, 2.75, 2.75])


async def test_per_reply_latency_overrides_and_distributions_are_seeded() -> None:
    fake = FakeProvider(replies=[FakeReply(latency=Constant(0.5), token_delay=0.0)])
    t0 = now()
    await fake.complete(req())
    assert now() - t0 == pytest.approx(0.5)

    mix = Mixture(((0.5, 0.1), (0.5, 3.0)))

    async def delays(seed: int) -> list[float]:
        f = FakeProvider(latency=mix, seed=seed)
        out = []
        for _ in range(20):
            t = now()
            await f.complete(req())
            out.append(round(now() - t, 6))
        return out

    a, b = await delays(7), await delays(7)
    assert a == b
    assert set(a) == {0.1, 3.0}  # both components drawn, nothing else


async def test_cancellation_mid_stream_is_counted_and_closes_the_stream() -> None:
    fake = FakeProvider(replies=[FakeReply(tokens=tuple("abcdefgh"))], token_delay=1.0)
    got: list[str] = []

    async def consume() -> None:
        async with fake.stream(req()) as s:
            async for c in s:
                got.append(c.text)

    with anyio.move_on_after(2.5):
        await consume()
    assert got == ["a", "b", "c"]
    assert fake.open_streams == 0
    assert fake.cancelled == 1 and fake.completed == 0 and fake.failed == 0


async def test_cancellation_during_latency_is_counted() -> None:
    fake = FakeProvider(latency=5.0)
    with anyio.move_on_after(1.0):
        await fake.complete(req())
    assert fake.open_streams == 0 and fake.cancelled == 1 and fake.started == 1


async def test_leaving_a_stream_early_counts_as_cancelled() -> None:
    fake = FakeProvider()
    async with fake.stream(req()) as s:
        async for _ in s:
            break
    assert fake.cancelled == 1 and fake.open_streams == 0
    assert fake.statistics() == {
        "calls": 1,
        "started": 1,
        "completed": 0,
        "cancelled": 1,
        "failed": 0,
        "open_streams": 0,
    }


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="replies or handler"):
        FakeProvider(replies=["a"], handler=lambda r, i: "b")
    with pytest.raises(ValueError, match="empty"):
        FakeProvider(replies=[])
    with pytest.raises(ValueError):
        FakeProvider(latency=-1.0)
