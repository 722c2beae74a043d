"""Prices: costs match genai-prices, overrides, local and unknown models, offline data."""

from __future__ import annotations

import subprocess
import sys
import threading

import genai_prices
import pytest
from genai_prices import data_snapshot
from structlog.testing import capture_logs

from asyncllm import ChatRequest, Message, Usage
from asyncllm.cost import DEFAULT_MAX_TOKENS, ModelPrice, Prices, worst_case
from asyncllm.cost._coefficients import Linear, Tiered
from asyncllm.cost._prices import _linear

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-2024-08-06"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered above 200k input tokens
]
USAGES = [
    Usage(input_tokens=1000, output_tokens=500),
    Usage(input_tokens=2000, output_tokens=10, cache_read_tokens=1500),
    Usage(input_tokens=3000, output_tokens=700, cache_read_tokens=500, cache_write_tokens=1000),
    Usage(input_tokens=250_000, output_tokens=2000, cache_read_tokens=10_000),
    Usage(),
]


def _theirs(kind: str, model: str, u: Usage) -> float:
    gu = genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
    )
    return float(genai_prices.calc_price(gu, model, provider_id=kind).total_price)


def _cost(p: Prices, kind: str, model: str, u: Usage, local: bool = False) -> float | None:
    return p.cost(provider=kind, kind=kind, model=model, usage=u, local=local)


@pytest.mark.parametrize(("kind", "model"), MODELS)
def test_costs_match_genai_prices(kind: str, model: str) -> None:
    p = Prices()
    for u in USAGES:
        assert _cost(p, kind, model, u) == pytest.approx(
            _theirs(kind, model, u), rel=1e-9, abs=1e-15
        )


def test_hand_computed_prices_from_bundled_data() -> None:
    p = Prices()
    # gpt-4o-mini: $0.15 in / $0.60 out per million tokens.
    assert _cost(p, "openai", "gpt-4o-mini", Usage(1000, 500)) == pytest.approx(0.00045)
    # gpt-4o: $2.50 in, $1.25 cached in, $10 out.
    u = Usage(input_tokens=2000, output_tokens=100, cache_read_tokens=1000)
    assert _cost(p, "openai", "gpt-4o", u) == pytest.approx(0.0025 + 0.00125 + 0.001)
    # claude-3-5-haiku: $0.80 in / $4 out.
    assert _cost(p, "anthropic", "claude-3-5-haiku-latest", Usage(2000, 1000)) == pytest.approx(
        0.0056
    )
    # claude-sonnet-4: $3 in, $15 out, $3.75 cache write, $0.30 cache read.
    u = Usage(
        input_tokens=10_000, output_tokens=1000, cache_read_tokens=4000, cache_write_tokens=2000
    )
    assert _cost(p, "anthropic", "claude-sonnet-4-20250514", u) == pytest.approx(
        4000 * 3e-6 + 4000 * 0.3e-6 + 2000 * 3.75e-6 + 1000 * 15e-6
    )


def test_tiered_model_switches_tier_above_its_threshold() -> None:
    p = Prices()
    small = _cost(p, "anthropic", "claude-sonnet-4-5", Usage(200_000, 0))
    big = _cost(p, "anthropic", "claude-sonnet-4-5", Usage(200_001, 0))
    assert small == pytest.approx(0.6)  # $3 per million at the threshold
    assert big == pytest.approx(200_001 * 6e-6)  # every token at the long-context rate
    entry = p._cache[("anthropic", "anthropic", "claude-sonnet-4-5")].entry
    assert isinstance(entry, Tiered) and entry.starts == (200_000,)


def test_anthropic_raw_convention_is_priced_like_the_inclusive_one() -> None:
    p = Prices()
    inclusive = Usage(input_tokens=1100, output_tokens=50, cache_read_tokens=1000)
    raw = Usage(input_tokens=100, output_tokens=50, cache_read_tokens=1000)
    m = "claude-3-5-haiku-latest"
    assert _cost(p, "anthropic", m, raw) == pytest.approx(_cost(p, "anthropic", m, inclusive))


def test_unknown_model_is_none_and_warns_once() -> None:
    p = Prices()
    with capture_logs() as logs:
        assert _cost(p, "openai", "no-such-model-xyz", Usage(10, 10)) is None
        assert _cost(p, "openai", "no-such-model-xyz", Usage(10, 10)) is None
    assert [e["event"] for e in logs] == ["cost.unknown_model"]
    assert p.statistics()["unknown"] == 2
    assert p.statistics()["unknown_models"] == ["openai:no-such-model-xyz"]


def test_unknown_kind_is_none_local_kinds_are_free() -> None:
    p = Prices()
    with capture_logs() as logs:
        assert _cost(p, "fake", "fake-model", Usage(10, 10)) is None
    assert logs[0]["event"] == "cost.unknown_provider"
    for kind in ("openai_compatible", "ollama", "vllm", "lmstudio"):
        assert _cost(p, kind, "llama3", Usage(10_000, 10_000)) == 0.0
    # local=True makes even a priced kind free (a self-hosted OpenAI-compatible server).
    assert _cost(p, "openai", "gpt-4o", Usage(10_000, 10_000), local=True) == 0.0


def test_overrides_win_by_provider_then_kind_then_wildcard() -> None:
    p = Prices(
        {
            ("openai", "my-ft-model"): ModelPrice(input_per_mtok=3, output_per_mtok=12),
            ("openai", "gpt-4o-mini"): ModelPrice(1, 1, cache_read_per_mtok=0.5),
            ("vllm", "*"): ModelPrice(0.1, 0.2, per_request=0.001),
            ("eu-gpu", "*"): ModelPrice(1, 1),
        }
    )
    u = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert _cost(p, "openai", "my-ft-model", u) == pytest.approx(15.0)
    assert _cost(p, "openai", "gpt-4o-mini", u) == pytest.approx(2.0)
    cached = Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000)
    assert _cost(p, "openai", "gpt-4o-mini", cached) == pytest.approx(0.5)
    assert _cost(p, "vllm", "anything", u) == pytest.approx(0.301)
    # A provider-name key beats the kind's genai-prices price.
    assert p.cost(provider="eu-gpu", kind="openai", model="gpt-4o", usage=u, local=False) == 2.0
    assert p.lookup(kind="openai", model="my-ft-model") == ModelPrice(3.0, 12.0, 3.0, 3.0, 0.0)


def test_provider_ids_extend_the_kind_mapping() -> None:
    p = Prices(provider_ids={"openai_compatible": "openai"})
    u = Usage(1000, 500)
    assert _cost(p, "openai_compatible", "gpt-4o-mini", u) == pytest.approx(0.00045)


def test_bad_override_is_a_configuration_error() -> None:
    from asyncllm import ConfigurationError

    with pytest.raises(ConfigurationError):
        Prices({("openai", "x"): (1, 2)})  # type: ignore[dict-item]


def test_lookups_are_cached_and_expire_after_ttl() -> None:
    now = [0.0]
    p = Prices(ttl=60, clock=lambda: now[0])
    for _ in range(100):
        _cost(p, "openai", "gpt-4o-mini", Usage(1, 1))
    assert p.statistics()["resolves"] == 1
    now[0] = 61
    _cost(p, "openai", "gpt-4o-mini", Usage(1, 1))
    assert p.statistics()["resolves"] == 2
    assert p.statistics()["priced"] == 101


def test_bundled_data_only_never_the_global_updated_snapshot() -> None:
    p = Prices()
    before = _cost(p, "openai", "gpt-4o-mini", Usage(1000, 500))
    # What genai_prices.UpdatePrices would install after a download: here an empty one.
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot([], from_auto_update=True))
    try:
        fresh = Prices()
        assert _cost(fresh, "openai", "gpt-4o-mini", Usage(1000, 500)) == before
        opted_in = Prices(use_updated_prices=True)
        with capture_logs():
            assert _cost(opted_in, "openai", "gpt-4o-mini", Usage(1000, 500)) is None
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert not any(t.name == "genai_prices:update" for t in threading.enumerate())


def test_importing_asyncllm_does_not_import_genai_prices() -> None:
    code = (
        "import sys, asyncllm, asyncllm.cost, asyncllm.telemetry;"
        "print('genai_prices' in sys.modules, 'opentelemetry' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_worst_case_uses_max_tokens_or_the_default_cap() -> None:
    p = Prices()
    req = ChatRequest(messages=(Message("user", "x" * 700),), max_tokens=100)
    n_in = req.estimated_input_tokens()
    expected = n_in * 0.15e-6 + 100 * 0.6e-6
    assert p.worst_case(req, kind="openai", model="gpt-4o-mini", local=False) == pytest.approx(
        expected
    )
    uncapped = ChatRequest(messages=req.messages)
    got = worst_case(p, uncapped, kind="openai", model="gpt-4o-mini", local=False)
    assert got == pytest.approx(n_in * 0.15e-6 + DEFAULT_MAX_TOKENS * 0.6e-6)
    with capture_logs():
        assert worst_case(p, req, kind="openai", model="nope-xyz", local=False) is None


def test_model_price_cost_and_hot_path_entry() -> None:
    mp = ModelPrice(input_per_mtok=2, output_per_mtok=8, cache_write_per_mtok=2.5)
    u = Usage(input_tokens=1000, output_tokens=100, cache_write_tokens=400)
    assert mp.cost(u) == pytest.approx(600 * 2e-6 + 400 * 2.5e-6 + 100 * 8e-6)
    assert isinstance(_linear(mp), Linear)
