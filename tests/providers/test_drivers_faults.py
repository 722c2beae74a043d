"""Injected faults, timeouts and cancellation, on both backends of every driver."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from _drivertest import KEY, VENDORS, consume, norm_error, on_both, opened, outcome, req

from asyncllm import ProviderError, StreamBroken
from asyncllm.providers import HttpResources
from asyncllm.providers._anthropic import AnthropicProvider
from asyncllm.providers._driver import Driver
from asyncllm.providers._openai import OpenAIProvider
from asyncllm.testing import Fault, Simulator

pytestmark = pytest.mark.parametrize("vendor", VENDORS)

# fault -> (error class name, status code, retry_after), for both complete() and stream()
STATUS_FAULTS = [
    (Fault.rate_limit(retry_after=1.5), ("RateLimited", 429, 1.5)),
    (Fault.server_error(500), ("ServerError", 500, None)),
    (Fault.server_error(502), ("ServerError", 502, None)),
    (Fault.unavailable(), ("ServerError", 503, None)),
    (Fault.overloaded(), ("Overloaded", 529, None)),
    (Fault.bad_request(), ("BadRequest", 400, None)),
    (Fault.context_window(), ("ContextWindowExceeded", 400, None)),
    (Fault.auth(), ("AuthenticationFailed", 401, None)),
]


@pytest.mark.parametrize(("fault", "want"), STATUS_FAULTS, ids=lambda v: getattr(v, "kind", ""))
async def test_status_faults(vendor: str, fault: Fault, want: tuple[Any, ...]) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        sim.inject(fault, times=2)
        a = await outcome(p.complete(req()))
        b = await outcome(consume(p, req()))
        assert a == b
        return a

    got = await on_both(vendor, scenario)
    assert got == ("error", *want, vendor)


async def test_rate_limited_carries_rate_limit_headers(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        await p.complete(req())
        try:
            await p.complete(req())
        except ProviderError as e:
            info = getattr(e, "rate_limits", None)
            assert info is not None
            return type(e).__name__, e.retryable, info.limit_requests, info.remaining_requests
        raise AssertionError("no 429")

    got = await on_both(vendor, scenario, sim_options={"rpm": 1, "period": 30.0})
    assert got == ("RateLimited", True, 1, 0)


async def test_wrong_api_key(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        try:
            await p.complete(req())
        except ProviderError as e:
            text = f"{e} {e!r} {e.__cause__!r}"
            assert KEY not in text and "Secret0123" not in text
            assert e.retryable is False
            return norm_error(e)
        raise AssertionError("accepted")

    got = await on_both(vendor, scenario, sim_options={"require_api_key": "sk-other-key-1234"})
    assert got[:2] == ("AuthenticationFailed", 401)


async def test_drop_mid_stream_is_stream_broken(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        sim.inject(Fault.drop_mid_stream(after=3))
        try:
            await consume(p, req())
        except StreamBroken as e:
            assert len(e.partial_text.split()) == 3
            return e.chunks_received, e.retryable, type(e.__cause__).__name__
        raise AssertionError("no error")

    assert await on_both(vendor, scenario) == (3, True, "ConnectionFailed")


async def test_drop_before_content_and_on_json(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        sim.inject(Fault.drop_mid_stream(after=0), times=2)
        a = await outcome(consume(p, req()))
        b = await outcome(p.complete(req()))
        return a, b

    a, b = await on_both(vendor, scenario)
    assert a[:2] == ("error", "ConnectionFailed")
    assert b[:2] == ("error", "ConnectionFailed")


async def test_malformed_chunk(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        sim.inject(Fault.malformed_chunk(after=2))
        sim.inject(Fault.malformed_chunk(after=0))
        sim.inject(Fault.malformed_chunk())
        mid = await outcome(consume(p, req()))
        first = await outcome(consume(p, req()))
        body = await outcome(p.complete(req()))
        return mid, first, body

    mid, first, body = await on_both(vendor, scenario)
    assert mid[:2] == ("error", "StreamBroken") and mid[-2:] == (2, "MalformedResponse")
    assert first[:2] == ("error", "MalformedResponse")
    assert body[:2] == ("error", "MalformedResponse")


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        (Fault.overloaded(after=2), "Overloaded"),
        (Fault.server_error(500, after=2), "ServerError"),
        (Fault.rate_limit(after=2), "RateLimited"),
    ],
    ids=["overloaded", "server", "rate"],
)
async def test_error_event_mid_stream(vendor: str, fault: Fault, cls: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        sim.inject(fault)
        sim.inject(Fault(fault.kind, status=fault.status, after=0))
        return await outcome(consume(p, req())), await outcome(consume(p, req()))

    after_content, before_content = await on_both(vendor, scenario)
    assert after_content[:2] == ("error", "StreamBroken") and after_content[-2:] == (2, cls)
    assert before_content[:3] == ("error", cls, None)


async def test_read_timeout(vendor: str) -> None:
    async def scenario(p: Driver, sim: Simulator) -> Any:
        sim.inject(Fault.stall(5.0))
        sim.inject(Fault.stall(5.0, after=2))
        a = await outcome(p.complete(req()))
        b = await outcome(consume(p, req()))
        await sim.wait_for(lambda st: st.disconnected >= 2, timeout=3)
        return a, b

    a, b = await on_both(vendor, scenario, timeout=0.2)
    assert a[:2] == ("error", "ProviderTimeout")
    assert b[:2] == ("error", "StreamBroken") and b[-2:] == (2, "ProviderTimeout")


async def test_connection_refused(vendor: str) -> None:
    async with Simulator() as sim:
        url = sim.openai_base_url if vendor == "openai" else sim.anthropic_base_url
    # The simulator is closed: its port now refuses connections.
    for backend in ("native", "sdk"):
        http = HttpResources()
        cls = OpenAIProvider if vendor == "openai" else AnthropicProvider
        p = cls(base_url=url, api_key=KEY, model="m", backend=backend)
        await p.open(http)
        try:
            a = await outcome(p.complete(req()))
            b = await outcome(consume(p, req()))
        finally:
            await http.aclose()
        assert a[:2] == b[:2] == ("error", "ConnectionFailed"), (backend, a, b)


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_leaving_the_stream_early_disconnects(vendor: str, backend: str) -> None:
    async with (
        Simulator(output_tokens=200, token_delay=0.01) as sim,
        opened(vendor, backend, sim) as p,
    ):
        async with p.stream(req()) as s:
            n = 0
            async for chunk in s:
                n += bool(chunk.text)
                if n == 3:
                    break
        await sim.wait_for(lambda st: st.disconnected == 1, timeout=2)
        # The pool still works afterwards.
        assert (await p.complete(req(max_tokens=2))).finish_reason == "length"
        assert sim.stats.completed == 1


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_cancelling_the_consumer_disconnects(vendor: str, backend: str) -> None:
    async with (
        Simulator(output_tokens=500, token_delay=0.01) as sim,
        opened(vendor, backend, sim) as p,
    ):
        got: list[str] = []
        three = anyio.Event()
        before = set(asyncio.all_tasks())

        async def reader() -> None:
            async with p.stream(req()) as s:
                async for chunk in s:
                    got.append(chunk.text)
                    if len(got) == 3:
                        three.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await three.wait()
            tg.cancel_scope.cancel()
        await sim.wait_for(lambda st: st.disconnected == 1, timeout=2)
        assert set(asyncio.all_tasks()) <= before
        assert 3 <= len(got) < 500


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_cancel_while_waiting_for_headers(vendor: str, backend: str) -> None:
    async with Simulator(latency=5.0) as sim, opened(vendor, backend, sim) as p:
        with anyio.move_on_after(0.1) as scope:
            await p.complete(req())
        assert scope.cancelled_caught
        await sim.wait_for(lambda st: st.disconnected == 1, timeout=2)


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_iterating_outside_the_context_is_an_error(vendor: str, backend: str) -> None:
    async with Simulator() as sim, opened(vendor, backend, sim) as p:
        s: Any = p.stream(req())
        with pytest.raises(RuntimeError, match="inside `async with"):
            await s.__anext__()
        assert sim.stats.received == 0
