"""Helpers for the driver tests: build a driver against a simulator, run a scenario on both
backends, and reduce responses and errors to comparable values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from asyncllm import ChatRequest, ProviderError, RateLimitInfo, Response, StreamBroken
from asyncllm._build import build_request
from asyncllm.providers import HttpResources, StreamAccumulator
from asyncllm.providers._anthropic import AnthropicProvider
from asyncllm.providers._driver import Driver
from asyncllm.providers._openai import OpenAIProvider
from asyncllm.testing import Simulator

VENDORS = ("openai", "anthropic")
BACKENDS = ("native", "sdk")
KEY = "sk-test-Secret0123456789abcdef"


def make_provider(vendor: str, backend: str, sim: Simulator, **options: Any) -> Driver:
    options.setdefault("api_key", KEY)
    options.setdefault("model", "sim-model")
    if vendor == "openai":
        return OpenAIProvider(base_url=sim.openai_base_url, backend=backend, **options)
    return AnthropicProvider(base_url=sim.anthropic_base_url, backend=backend, **options)


@asynccontextmanager
async def opened(
    vendor: str, backend: str, sim: Simulator, **options: Any
) -> AsyncIterator[Driver]:
    """A driver bound to a fresh pool, closed afterwards."""
    http = HttpResources()
    p = make_provider(vendor, backend, sim, **options)
    await p.open(http)
    try:
        yield p
    finally:
        await p.aclose()
        await http.aclose()


def req(prompt: object = "Tell me something.", **params: Any) -> ChatRequest:
    return build_request(prompt, params)


async def consume(p: Driver, request: ChatRequest) -> Response:
    """A streamed response, folded the way Client.stream folds it."""
    acc = StreamAccumulator()
    async with p.stream(request) as s:
        async for chunk in s:
            acc.add(chunk)
        return acc.response(provider=p.name, model=s.model, rate_limits=s.rate_limits)


def norm_limits(info: RateLimitInfo | None) -> tuple[Any, ...] | None:
    """Limits without the (timing-dependent) reset values: only whether they were read."""
    if info is None:
        return None
    return (
        info.limit_requests,
        info.remaining_requests,
        info.reset_requests is not None,
        info.limit_tokens,
        info.remaining_tokens,
        info.reset_tokens is not None,
    )


def norm(r: Response) -> tuple[Any, ...]:
    """Everything of a response but timings and chunk boundaries."""
    return (
        r.text,
        r.finish_reason,
        r.raw_finish_reason,
        r.usage,
        r.provider,
        r.model,
        r.tool_calls,
        norm_limits(r.rate_limits),
    )


def norm_error(e: BaseException) -> tuple[Any, ...]:
    assert isinstance(e, ProviderError), repr(e)
    extra: tuple[Any, ...] = ()
    if isinstance(e, StreamBroken):
        extra = (e.partial_text, e.chunks_received, type(e.__cause__).__name__)
    return (type(e).__name__, e.status_code, getattr(e, "retry_after", None), e.provider, *extra)


Scenario = Callable[[Driver, Simulator], Awaitable[Any]]


async def on_both(
    vendor: str,
    scenario: Scenario,
    *,
    sim_options: dict[str, Any] | None = None,
    **options: Any,
) -> Any:
    """Run ``scenario`` on each backend against its own fresh simulator; results must match."""
    results = {}
    for backend in BACKENDS:
        async with (
            Simulator(**(sim_options or {})) as sim,
            opened(vendor, backend, sim, **options) as p,
        ):
            results[backend] = await scenario(p, sim)
    assert results["native"] == results["sdk"], results
    return results["native"]


async def outcome(coro: Awaitable[Response]) -> tuple[Any, ...]:
    """A response or an error, normalised."""
    try:
        return ("ok", *norm(await coro))
    except ProviderError as e:
        return ("error", *norm_error(e))
