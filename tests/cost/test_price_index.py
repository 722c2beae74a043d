"""The compact price index: it agrees with the installed genai-prices, answers without
importing it, and steps aside when it is stale."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.data import providers as gp_providers
from structlog.testing import capture_logs

from asyncllm import Usage
from asyncllm.cost import Prices, _price_index, _prices
from asyncllm.cost._price_build import build, dumps
from asyncllm.cost._price_index import DEFER, INDEX_PATH, load_index

TODAY = datetime.now(tz=UTC).date()


def test_committed_index_matches_the_installed_genai_prices() -> None:
    # Fails after a genai-prices upgrade until `python -m asyncllm.cost._price_build` is run.
    assert INDEX_PATH.read_bytes() == dumps(build()), (
        "asyncllm/cost/price_index.jsonl is stale: run python -m asyncllm.cost._price_build"
    )


def _refs(model: Any) -> list[str]:
    """References that exercise a model's match logic: its id and every clause argument,
    plus a dated suffix for prefix clauses."""
    out = [model.id]

    def walk(logic: Any) -> None:
        for attr in ("or_", "and_"):
            for c in getattr(logic, attr, ()):
                walk(c)
        for attr in ("equals", "starts_with", "contains", "ends_with"):
            value = getattr(logic, attr, None)
            if value:
                out.append(value)
                if attr == "starts_with":
                    out.append(value + "-2025-01-01")

    walk(model.match)
    return out


def test_index_resolves_every_reference_like_genai_prices() -> None:
    index = load_index()
    assert index is not None
    snapshot = data_snapshot.DataSnapshot(providers=gp_providers, from_auto_update=False)
    checked = 0
    for p in gp_providers:
        refs = [r for m in p.models for r in _refs(m)] + ["no-such-model-xyz"]
        for ref in refs:
            try:
                _, info = snapshot.find_provider_model(ref, None, p.id, None)
                want: Any = info.id
            except LookupError:
                want = None
            found = index._model(index._by_id[p.id], ref.lower(), True)
            got = None if found is None else found[0]
            assert got == want, (p.id, ref)
            checked += 1
    assert checked > 3000


MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("groq", "llama-3.1-8b-instant"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("mistral", "mistral-large-latest"),
]
USAGES = [
    Usage(input_tokens=1000, output_tokens=500),
    Usage(input_tokens=3000, output_tokens=700, cache_read_tokens=500, cache_write_tokens=1000),
    Usage(input_tokens=250_000, output_tokens=2000, cache_read_tokens=10_000),
]


@pytest.mark.parametrize(("provider_id", "model"), MODELS)
def test_index_costs_equal_genai_prices(provider_id: str, model: str) -> None:
    index = load_index()
    assert index is not None
    prices = Prices(provider_ids={"x": provider_id})
    for u in USAGES:
        gu = genai_prices.Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
        )
        want = float(genai_prices.calc_price(gu, model, provider_id=provider_id).total_price)
        got = prices.cost(provider="p", kind="x", model=model, usage=u, local=False)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15), (provider_id, model, u)
    # The answer came from the index, except for time-of-day prices (deepseek's off-peak
    # rates), which only genai-prices resolves.
    deferred = index.find(provider_id, model, TODAY) is DEFER
    assert deferred == (provider_id == "deepseek")


def test_client_open_and_first_priced_request_never_import_genai_prices() -> None:
    code = """
import sys, anyio
from asyncllm import Client, Usage
from asyncllm.testing import FakeProvider, FakeReply

async def main():
    fake = FakeProvider("openai", kind="openai", model="gpt-4o-mini",
                        replies=[FakeReply(usage=Usage(1000, 500))])
    async with Client(fake) as client:
        r = await client.complete("hello")
    assert abs(r.cost_usd - 0.00045) < 1e-12, r.cost_usd
    print(sorted(m for m in sys.modules if m.startswith("genai_prices")))

anyio.run(main)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_stale_index_falls_back_to_genai_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_price_index, "installed_genai_prices_version", lambda: "0.0.0-other")
    monkeypatch.setattr(_prices, "_INDEX", [])
    with capture_logs() as logs:
        p = Prices()
        cost = p.cost(
            provider="o", kind="openai", model="gpt-4o-mini", usage=Usage(1000, 500), local=False
        )
    assert cost == pytest.approx(0.00045)
    assert "cost.price_index_stale" in [e["event"] for e in logs]
    assert p._snapshot is not None  # genai-prices answered


def test_compact_dated_reference_defers_to_genai_prices() -> None:
    index = load_index()
    assert index is not None
    # genai-prices rewrites compact dates only as a fallback: the index must not say "unknown".
    assert index.find("openai", "gpt-4o-mini-20240718", TODAY) is DEFER
    assert index.find("openai", "no-such-model", TODAY) is None
    p = Prices()
    got = p.cost(
        provider="o", kind="openai", model="gpt-4o-mini-20240718", usage=Usage(1000, 500),
        local=False,
    )  # fmt: skip
    assert got == pytest.approx(0.00045)
