"""Circuit breakers inside a client: open, fall over with CircuitOpen, probe, close."""

from __future__ import annotations

import anyio
import pytest

from asyncllm import AllProvidersFailed, CircuitOpen, Client, RateLimited, ServerError
from asyncllm.orchestrator import BreakerPolicy, RetryPolicy
from asyncllm.testing import FakeProvider

pytestmark = pytest.mark.looptime

POLICY = BreakerPolicy(failure_rate=0.5, min_volume=3, window=10, cooldown=5)
NO_RETRY = RetryPolicy(max_retries=0)


async def test_breaker_opens_then_requests_skip_the_provider() -> None:
    healthy = {"up": False}

    def handler(request: object, i: int) -> str | Exception:
        return "a ok" if healthy["up"] else ServerError("down", status_code=503)

    a = FakeProvider("a", handler=handler)
    b = FakeProvider("b", replies=["b ok"])
    async with Client([a, b], breaker=POLICY, retry=NO_RETRY, log=False) as client:
        for _ in range(3):
            assert (await client.complete("hi")).provider == "b"
        assert client.statistics()["providers"]["a"]["breaker"]["state"] == "open"
        calls = len(a.calls)
        for _ in range(5):  # open: a is not even called
            assert (await client.complete("hi")).provider == "b"
        assert len(a.calls) == calls
        healthy["up"] = True
        await anyio.sleep(5)  # cool-down: the next request is a probe
        assert (await client.complete("hi")).provider == "a"
        stats = client.statistics()["providers"]["a"]["breaker"]
        assert stats["state"] == "closed"
        assert stats["rejected"] == 5


async def test_open_breaker_alone_raises_all_failed_with_circuit_open() -> None:
    a = FakeProvider("a", replies=[ServerError("down")])
    policy = BreakerPolicy(min_volume=1, cooldown=30)
    async with Client(a, breaker=policy, retry=NO_RETRY, log=False) as client:
        with pytest.raises(AllProvidersFailed):
            await client.complete("hi")
        with pytest.raises(AllProvidersFailed) as info:
            await client.complete("hi")
    assert isinstance(info.value.exceptions[0], CircuitOpen)
    assert info.value.retryable
    assert len(a.calls) == 1


async def test_rate_limits_do_not_trip_the_breaker() -> None:
    a = FakeProvider("a", replies=[RateLimited("429")])
    b = FakeProvider("b")
    async with Client([a, b], breaker=POLICY, retry=NO_RETRY, log=False) as client:
        for _ in range(10):
            await client.complete("hi")
        assert client.statistics()["providers"]["a"]["breaker"]["state"] == "closed"
    assert len(a.calls) == 10


async def test_breakers_can_be_turned_off() -> None:
    a = FakeProvider("a", replies=[ServerError("down")])
    b = FakeProvider("b")
    async with Client([a, b], breaker=None, retry=NO_RETRY, log=False) as client:
        for _ in range(30):
            await client.complete("hi")
        assert client.statistics()["providers"]["a"]["breaker"] is None
    assert len(a.calls) == 30
