"""A server that reports no usage never makes requests free (both backends, both paths)."""

from __future__ import annotations

import pytest
from _quirks import BACKENDS, KINDS, answer, quirk_server
from _quirks import make_provider as provider

from asyncllm import AllProvidersFailed, BudgetExceeded, Client, RateLimiter, output_cap
from asyncllm._types import build_request
from asyncllm.cost import MemoryBudget, ModelPrice, Prices, SpendLimit

# $1 per 1,000 tokens: "hi" with max_tokens=10 has a worst case of $0.017.
PRICES = Prices({(k, "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000) for k in KINDS})
USAGE = {
    "openai": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    "anthropic": {"input_tokens": 3, "output_tokens": 2},
}


async def ask(client: Client, stream: bool, max_tokens: int = 10) -> object:
    if not stream:
        return await client.complete("hi", max_tokens=max_tokens)
    async with client.stream("hi", max_tokens=max_tokens) as s:
        async for _ in s:
            pass
    return s.response


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
async def test_missing_usage_is_none_and_books_the_worst_case(
    kind: str, backend: str, stream: bool
) -> None:
    request = build_request("hi", {"max_tokens": 10})
    worst = (request.estimated_input_tokens() + output_cap(request)) / 1000
    async with quirk_server(answer(kind, stream, None)) as srv:
        budget = MemoryBudget(SpendLimit(10 * worst - 1e-9))
        limiter = RateLimiter(tpm=1_000_000)
        p = provider(kind, backend, srv)
        answered = refused = 0
        async with Client(p, budget=budget, pricing=PRICES, limits={kind: limiter}, log=False) as c:
            for _ in range(20):
                try:
                    r = await ask(c, stream)
                except (BudgetExceeded, AllProvidersFailed):
                    refused += 1
                    continue
                answered += 1
                assert r.usage is None and r.usage_estimated  # type: ignore[attr-defined]
                assert r.cost_usd == pytest.approx(worst)  # type: ignore[attr-defined]
    assert (answered, refused) == (9, 11)  # not 20 of 20 "free" requests
    assert budget.statistics()["buckets"]["day"]["spent_usd"] == pytest.approx(9 * worst)
    stats = limiter.statistics()
    assert stats["tokens_refunded"] == 0  # unknown usage keeps the whole reservation


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
async def test_reported_usage_is_used_as_reported(kind: str, backend: str, stream: bool) -> None:
    async with (
        quirk_server(answer(kind, stream, USAGE[kind])) as srv,
        Client(provider(kind, backend, srv), pricing=PRICES, log=False) as c,
    ):
        r = await ask(c, stream)
    assert r.usage is not None and not r.usage_estimated  # type: ignore[attr-defined]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (3, 2)  # type: ignore[attr-defined]
    assert r.cost_usd == pytest.approx(0.005)  # type: ignore[attr-defined]


def test_unknown_usage_survives_the_cache_round_trip() -> None:
    from asyncllm import Response
    from asyncllm.cache import ResponseSerializer

    serde = ResponseSerializer()
    r = Response(text="x", finish_reason="stop", usage=None, provider="p", model="m")
    back = serde.loads(serde.dumps(r))
    assert back.usage is None
