"""``Timeout``: every time limit of a request in one frozen value (issue 12).

A timeout is a duration; the request's deadline is an absolute time derived from
``Timeout.total`` when the request starts. The old ``attempt_timeout=`` and
``first_token_timeout=`` arguments are shorthands for the same fields.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from asyncllm import (
    AllProvidersFailed,
    Client,
    ConfigurationError,
    DeadlineExceeded,
    ProviderTimeout,
    Timeout,
)
from asyncllm.orchestrator import RetryPolicy
from asyncllm.testing import FakeProvider, FakeReply, Simulator


def test_timeout_is_a_frozen_validated_value() -> None:
    t = Timeout(total=30, attempt=10, first_token=2, connect=3, read=60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.total = 5  # type: ignore[misc]
    assert Timeout.coerce(12.5) == Timeout(total=12.5)
    assert Timeout.coerce(None) == Timeout()
    assert Timeout.coerce(t) is t
    for bad in (0, -1, math.nan, True, "5"):
        with pytest.raises(ConfigurationError, match=r"Timeout\.attempt"):
            Timeout(attempt=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout"):
        Timeout.coerce("soon")  # type: ignore[arg-type]


def test_a_calls_limits_override_the_clients_field_by_field() -> None:
    client = Timeout(total=30, attempt=10, connect=3)
    call = Timeout(attempt=2, first_token=1)
    assert call.over(client) == Timeout(total=30, attempt=2, first_token=1, connect=3)
    assert Timeout().over(client) == client


def test_shorthands_and_timeout_conflict_loudly() -> None:
    p = FakeProvider("a")
    with pytest.raises(ConfigurationError, match=r"attempt_timeout= and Timeout\.attempt"):
        Client(p, timeout=Timeout(attempt=1), attempt_timeout=2)
    with pytest.raises(ConfigurationError, match="first_token_timeout"):
        Client(p, first_token_timeout=-1)
    with pytest.raises(ConfigurationError, match="timeout"):
        Client(p, timeout=0)


@pytest.mark.looptime
async def test_total_is_the_deadline_of_the_whole_request(looptime: float) -> None:
    slow = FakeProvider("a", latency=10.0)
    async with Client(slow, timeout=Timeout(total=2.5), log=False) as client:
        with pytest.raises(DeadlineExceeded):
            await client.complete("hi")
    assert float(looptime) == pytest.approx(2.5, abs=1e-3)


@pytest.mark.looptime
async def test_attempt_limit_fails_over_like_attempt_timeout(looptime: float) -> None:
    a = FakeProvider("a", latency=5.0)
    b = FakeProvider("b", latency=0.1, replies=["from b"])
    async with Client([a, b], timeout=Timeout(attempt=1.0), log=False) as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    assert float(looptime) == pytest.approx(1.1, abs=1e-3)


@pytest.mark.looptime
async def test_a_call_sets_its_own_first_token_limit(looptime: float) -> None:
    slow_first = FakeReply(tokens=("", "late"), latency=0.1, token_delay=5.0)
    a = FakeProvider("a", replies=[slow_first, slow_first])
    b = FakeProvider("b", replies=["from b"])
    async with Client([a, b], timeout=30, log=False) as client:
        response = await client.complete("hi", timeout=Timeout(first_token=0.5))
        assert response.provider == "b"
        assert float(looptime) == pytest.approx(0.5, abs=1e-3)
        # The call's limits did not stick to the client.
        with pytest.raises(ConfigurationError, match="not per call"):
            await client.complete("hi", timeout=Timeout(connect=1))


@pytest.mark.looptime
async def test_a_streams_total_limit_per_call(looptime: float) -> None:
    slow = FakeProvider("a", latency=10.0)
    async with Client(slow, log=False) as client:
        with pytest.raises(DeadlineExceeded):
            async with client.stream("hi", timeout=Timeout(total=1.5)) as s:
                async for _ in s:
                    pass
    assert float(looptime) == pytest.approx(1.5, abs=1e-3)


def test_connect_and_read_apply_only_to_providers_the_client_builds() -> None:
    with pytest.raises(ConfigurationError, match="driver object"):
        Client(FakeProvider("a"), timeout=Timeout(read=5))
    with pytest.raises(ConfigurationError, match="does not take connect/read"):
        Client("fake:m", timeout=Timeout(connect=5))


async def test_read_limit_reaches_a_driver_built_from_a_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Simulator(latency=3.0) as sim:
        monkeypatch.setenv("OPENAI_BASE_URL", sim.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
        limits = Timeout(read=0.2, connect=1.0)
        async with Client(
            "openai:gpt-4o-mini", timeout=limits, retry=RetryPolicy(max_attempts=1), log=False
        ) as client:
            with pytest.raises((ProviderTimeout, AllProvidersFailed)) as info:
                await client.complete("hi")
    errors = info.value.exceptions if isinstance(info.value, AllProvidersFailed) else [info.value]
    assert all(isinstance(e, ProviderTimeout) for e in errors), errors
