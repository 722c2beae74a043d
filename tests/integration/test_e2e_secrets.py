"""The API key goes on the wire and nowhere else: not in logs (structlog events, the stdlib
loggers the SDKs use), cache keys, errors (messages, reprs, tracebacks), reprs of the
client, drivers, cache, limiter and responses, ``client.statistics()`` or metrics; on the
native and the SDK backends of both vendors, with 401, 429 and 500 errors injected.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from _e2e_helpers import KEY, prices, strings_reachable
from _structlog import structlog_as_found
from structlog.testing import capture_logs

from asyncllm import (
    AllProvidersFailed,
    AuthenticationFailed,
    BadRequest,
    Client,
    MemoryBudget,
    MetricsObserver,
    RateLimited,
    RateLimiter,
    RetryPolicy,
    SpendLimit,
    StreamBroken,
)
from asyncllm.cache import ResponseCache
from asyncllm.providers._anthropic import AnthropicProvider
from asyncllm.providers._openai import OpenAIProvider
from asyncllm.testing import Fault, Simulator

CASES = [("openai", "native"), ("openai", "sdk"), ("anthropic", "native"), ("anthropic", "sdk")]


@pytest.fixture
def captured() -> Iterator[list[dict[str, Any]]]:
    """structlog events, with structlog's configured-ness restored afterwards (the library
    stays silent while the application has not configured structlog)."""
    with structlog_as_found(), capture_logs() as logs:
        yield logs


def driver(vendor: str, backend: str, sim: Simulator) -> Any:
    if vendor == "openai":
        return OpenAIProvider(
            name="oa", base_url=sim.openai_base_url, model="sim-oa", api_key=KEY, backend=backend
        )
    return AnthropicProvider(
        name="an", base_url=sim.anthropic_base_url, model="sim-an", api_key=KEY, backend=backend
    )


def sim_headers(sim: Simulator) -> list[dict[str, str]]:
    return [dict(r.headers) for r in sim.requests]


async def run_everything(client: Client, sim: Simulator) -> tuple[list[Any], list[Exception]]:
    """401, 429 (twice: retries exhausted), 500 (retried), a stream broken mid-way, then
    a clean stream (stored) and its replay from the cache."""
    seen: list[Any] = []
    errors: list[Exception] = []
    sim.inject(Fault.auth())
    with pytest.raises(AuthenticationFailed) as auth:
        await client.complete("first", temperature=0)
    sim.inject(Fault.rate_limit(retry_after=0.01), times=2)
    with pytest.raises(AllProvidersFailed) as limited:
        await client.complete("second", temperature=0)
    assert all(isinstance(e, RateLimited) for e in limited.value.exceptions)
    sim.inject(Fault.server_error(500))
    seen.append(await client.complete("third", temperature=0))
    sim.inject(Fault.server_error(500, after=1))
    with pytest.raises(StreamBroken) as broken:
        async with client.stream("fourth", temperature=0) as s:
            async for _ in s:
                pass
    for _ in range(2):
        async with client.stream("fifth", temperature=0) as s:
            async for chunk in s:
                seen.append(chunk)
        seen.append(s.response)
    errors += [auth.value, limited.value, broken.value]
    return seen, errors


@pytest.mark.parametrize(("vendor", "backend"), CASES)
async def test_the_key_appears_nowhere_but_on_the_wire(
    vendor: str,
    backend: str,
    captured: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # everything the SDKs and their HTTP stacks log
    async with Simulator(output_tokens=4) as sim:
        p = driver(vendor, backend, sim)
        table = prices()
        cache = ResponseCache()
        metrics = MetricsObserver()
        limiter = RateLimiter(rpm=10_000, name=p.name)
        budget = MemoryBudget(SpendLimit(10.0), pricing=table)
        client = Client(
            p,
            retry=RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.01),
            limits={p.name: limiter},
            budget=budget,
            pricing=table,
            cache=cache,
            observers=[metrics],
        )
        async with client:
            seen, errors = await run_everything(client, sim)
            stats = client.statistics()
            keys = list(cache.backend._cache)  # the memory backend's own keys
            texts = [
                repr(client),
                repr(p),
                repr(cache),
                repr(limiter),
                repr(seen),
                repr(stats),
                repr(metrics.statistics()),
                repr(budget.statistics()),
                repr(limiter.statistics()),
                repr(cache.statistics()),
                repr(keys),
                repr(captured),
                caplog.text,
            ]
            for e in errors:
                texts += [str(e), repr(e), "".join(traceback.format_exception(e))]
                texts += [repr(x) for x in getattr(e, "exceptions", ())]
        # The key did go out, on every request.
        sent = [h.get("authorization", "") + h.get("x-api-key", "") for h in sim_headers(sim)]
        # 401, 429 twice, 500 and its retry, the broken stream, the stream (the replay is
        # a cache hit: it sends nothing)
        assert len(sent) == 7 and all(KEY in h for h in sent)
    assert len(captured) >= 6  # the logging observer did log attempts and requests
    assert keys and stats["cache"]["hits"] == 1
    for text in texts:
        assert KEY not in text
        assert "SECRET1234567890" not in text


@pytest.mark.parametrize(
    "backend",
    [
        "native",
        "sdk",
    ],
)
@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_the_key_is_not_reachable_from_a_raised_error(vendor: str, backend: str) -> None:
    """What an error reporter that serialises an exception and its chain can see."""
    async with Simulator(output_tokens=2) as sim:
        client = Client(driver(vendor, backend, sim), log=False)
        async with client:
            sim.inject(Fault.bad_request())
            with pytest.raises(BadRequest) as info:
                await client.complete("hi")
    leaked = [s for s in strings_reachable(info.value) if "SECRET1234567890" in s]
    assert leaked == []
