"""The run configuration (TOML or dict) and the client it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncllm import ConfigurationError
from asyncllm.batch import ModelRule, build_client, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "batch" / "asyncllm.toml"


def test_config_builds_providers_limits_prices_and_batch_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "asyncllm.toml"
    cfg.write_text(
        """
[client]
strategy = "race"
timeout = 5
concurrency = 8

[batch]
model_policy = "override"
ordered = true
grace_period = 3
fsync_interval = 0.5

[budget]
usd = 2.5

[providers.local]
spec = "vllm:llama"
base_url = "http://127.0.0.1:9/v1"
price = { input_per_mtok = 1.0, output_per_mtok = 2.0 }
[providers.local.limits]
rpm = 60
max_concurrency = 4
"""
    )
    config = load_config(cfg)
    assert [p.name for p in config.providers] == ["local"]
    assert config.strategy == "race" and config.timeout == 5.0 and config.concurrency == 8
    assert set(config.limits) == {"local"}
    assert config.prices == {("local", "llama"): {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}
    assert config.budget_usd == 2.5
    assert config.batch.ordered and config.batch.grace_period == 3.0
    assert config.model_rule() == ModelRule("override", frozenset({"llama"}))
    client = build_client(config)
    assert client.strategy.name == "race"


async def test_the_budget_counts_what_earlier_runs_spent() -> None:
    config = load_config(
        {"budget": {"usd": 1.0}, "providers": {"a": {"spec": "vllm:m", "base_url": "http://x"}}}
    )
    client = build_client(config, spent_usd=0.75)
    limit = client.statistics()["budget"]["buckets"]
    assert [b["limit_usd"] for b in limit.values()] == [0.25]
    spent_all = build_client(config, spent_usd=3.0).statistics()["budget"]["buckets"]
    assert [b["limit_usd"] for b in spent_all.values()] == [0.0]


def test_the_shipped_sample_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(EXAMPLE)
    assert config.providers and config.budget_usd is not None


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({}, "no \\[providers"),
        ({"providers": {"a": {"spec": "openai:x", "api_key": "sk-secret-value"}}}, "secrets"),
        ({"providers": {"a": {"base_url": "x"}}}, "spec"),
        ({"providers": {"a": {"spec": "nope:x"}}}, "unknown provider"),
        ({"client": {"strategy": "yolo"}, "providers": {"a": {"spec": "vllm:m"}}}, "strategy"),
        ({"client": {"concurrency": 0}, "providers": {"a": {"spec": "vllm:m"}}}, "concurrency"),
        ({"extra": {}, "providers": {"a": {"spec": "vllm:m"}}}, "unknown config"),
        ({"batch": {"model_policy": "any"}, "providers": {"a": {"spec": "vllm:m"}}}, "policy"),
        ({"batch": {"grace_period": -1}, "providers": {"a": {"spec": "vllm:m"}}}, "grace"),
        ({"batch": {"x": 1}, "providers": {"a": {"spec": "vllm:m"}}}, "unknown keys"),
        ({"budget": {"usd": "lots"}, "providers": {"a": {"spec": "vllm:m"}}}, "usd"),
        ({"budget": {"cap": 1}, "providers": {"a": {"spec": "vllm:m"}}}, "budget"),
    ],
)
def test_bad_config_is_a_configuration_error(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle) as info:
        parse_config(data)
    assert "sk-secret-value" not in str(info.value)


def test_unreadable_config_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[client\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[client]\nconcurrency = -1\n[providers.a]\nspec = 'vllm:m'\n")
    with pytest.raises(ConfigurationError, match=r"wrong\.toml.*concurrency"):
        load_config(wrong)


async def test_dry_run_worst_case_counts_every_leg_a_hedge_may_send(tmp_path: Path) -> None:
    from asyncllm import Hedge
    from asyncllm.batch import estimate, load_config

    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "hi", "max_tokens": 10}\n')
    provider = {
        "spec": "openai_compatible:m1",
        "base_url": "http://127.0.0.1:9/v1",
        "price": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0},
    }
    worst = {}
    for strategy in ("fallback", "hedge"):
        config = load_config({"client": {"strategy": strategy}, "providers": {"p": provider}})
        worst[strategy] = (await estimate(config, inp, tmp_path / "out.jsonl")).worst_case_usd
    # Hedge() sends a primary and up to two backups: three legs at worst, not two.
    assert worst["hedge"] == pytest.approx(Hedge().max_attempts * worst["fallback"])
