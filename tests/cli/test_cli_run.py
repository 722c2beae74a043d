"""``asyncllm run`` (the main job) and its TOML configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from asyncllm import ConfigurationError
from asyncllm.cli._config import build_client, load_config, parse_config
from asyncllm.testing import Simulator


def test_config_builds_providers_limits_and_prices(tmp_path: Path) -> None:
    cfg = tmp_path / "asyncllm.toml"
    cfg.write_text(
        """
[client]
strategy = "race"
timeout = 5
concurrency = 8

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
    client = build_client(config)
    assert client.strategy.name == "race"


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


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    return env


def test_main_job_runs_on_the_embedded_simulator(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "asyncllm.cli", "run", "--count", "40", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "embedded simulator" in proc.stderr
    assert "40 ok, 0 failed" in proc.stderr
    assert proc.stdout.strip(), "the first answer is streamed to stdout"
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["index"] for r in records] == list(range(40))
    assert all(r["text"] and r["output_tokens"] > 0 for r in records)
    assert any(r["cached"] for r in records), "repeated prompts are answered by the cache"


async def test_batch_from_a_config_and_input_file(tmp_path: Path) -> None:
    async with Simulator() as sim:
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            f"""
[providers.sim]
spec = "openai_compatible:m1"
base_url = "{sim.openai_base_url}"
"""
        )
        prompts = tmp_path / "in.jsonl"
        prompts.write_text(
            '{"prompt": "hello", "max_tokens": 3}\n\n'
            '{"messages": [{"role": "user", "content": "hi"}]}\n'
        )
        out = tmp_path / "out.jsonl"
        args = [
            sys.executable,
            "-m",
            "asyncllm.cli",
            "run",
            "--config",
            str(cfg),
            "--input",
            str(prompts),
            "--output",
            str(out),
            "--quiet",
        ]
        import anyio

        proc = await anyio.run_process(args, check=False, env=_env())
        assert proc.returncode == 0, proc.stderr.decode()
        records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert len(records) == 2 and records[0]["output_tokens"] == 3
        assert records[0]["finish_reason"] == "length"
        assert sim.stats.received == 2

        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"nope": 1}\n')
        args[args.index(str(prompts))] = str(bad)
        proc = await anyio.run_process(args, check=False, env=_env())
        assert proc.returncode == 1
        assert b"needs 'prompt' or 'messages'" in proc.stderr
