"""``asyncllm run --ray``: the CLI face of the Ray stage (on the session's local Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from asyncllm.cli._main import main
from asyncllm.testing import Simulator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


def test_run_ray_writes_one_record_per_line_and_resumes(
    ray_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"id": f"q{i}", "prompt": f"p {i}"}) + b"\n"
                             for i in range(20)) + b"not json\n")  # fmt: skip
    out = tmp_path / "out.jsonl"
    with start_blocking_portal() as portal:
        sim = portal.call(Simulator().__aenter__)
        try:
            cfg = tmp_path / "job.toml"
            cfg.write_text(
                f'[providers.sim]\nspec = "openai_compatible:sim-1"\n'
                f'base_url = "{sim.openai_base_url}"\n'
            )
            argv = ["run", "--config", str(cfg), "--input", str(inp), "--output", str(out),
                    "--ray", "--actors", "2"]  # fmt: skip
            assert main(argv) == 1  # one bad line: the local run's "finished with errors"
            assert main(argv) == 1  # rerun: nothing left to send
            sent = sim.stats.completed
        finally:
            portal.call(sim.__aexit__, None, None, None)
    recs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sent == 20 and len(recs) == 21
    assert sorted(r["custom_id"] for r in recs if r["custom_id"]) == sorted(
        f"q{i}" for i in range(20)
    )
    assert [r["error"]["code"] for r in recs if r["error"]] == ["invalid_json"]
    assert "0 records written" in capsys.readouterr().err


def test_run_ray_sends_transient_failures_again_on_a_rerun(
    ray_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asyncllm.testing import Fault

    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"id": f"q{i}", "prompt": f"p {i}"}) + b"\n"
                             for i in range(6)))  # fmt: skip
    out = tmp_path / "out.jsonl"
    with start_blocking_portal() as portal:
        sim = portal.call(Simulator().__aenter__)
        try:
            cfg = tmp_path / "job.toml"
            cfg.write_text(
                f'[providers.sim]\nspec = "openai_compatible:sim-1"\n'
                f'base_url = "{sim.openai_base_url}"\n'
            )
            argv = ["run", "--config", str(cfg), "--input", str(inp), "--output", str(out),
                    "--ray"]  # fmt: skip
            sim.inject(Fault.unavailable(), times=100_000)  # the provider is down
            assert main(argv) == 1
            first = [orjson.loads(line) for line in out.read_bytes().splitlines()]
            assert len(first) == 6 and all(r["asyncllm"]["transient"] for r in first)
            assert "rerun the same command to send them again" in capsys.readouterr().err
            sim.clear_faults()  # it is back: a rerun finishes the batch
            assert main(argv) == 0
            assert "sent again 6 request(s)" in capsys.readouterr().err
        finally:
            portal.call(sim.__aexit__, None, None, None)
    recs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(r["custom_id"] for r in recs) == [f"q{i}" for i in range(6)]
    assert all(r["error"] is None for r in recs)


def test_run_ray_refuses_unshared_limits_with_several_actors(
    ray_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "job.toml"
    cfg.write_text(
        '[providers.sim]\nspec = "openai_compatible:sim-1"\nbase_url = "http://127.0.0.1:9/v1"\n'
        "[providers.sim.limits]\nrpm = 100\n"
    )
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"prompt": "hi"}\n')
    argv = ["run", "--config", str(cfg), "--input", str(inp), "--ray", "--actors", "4",
            "--output", str(tmp_path / "out.jsonl")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "[providers.sim.limits]" in err and "Redis" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_run_ray_budget_counts_earlier_runs_and_dry_run_sends_nothing(
    ray_session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--budget``, ``--dry-run`` and ``--restart`` work with ``--ray``, and what earlier
    runs spent counts against an in-process budget: a rerun with the same budget does not
    spend it a second time."""
    n = 30
    inp = tmp_path / "in.jsonl"
    lines = [{"id": f"q{i}", "prompt": f"tell me {i}", "max_tokens": 4} for i in range(n)]
    inp.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    out = tmp_path / "out.jsonl"
    with start_blocking_portal() as portal:
        sim = portal.call(Simulator().__aenter__)
        try:
            cfg = tmp_path / "job.toml"
            cfg.write_text(
                f'[client]\nconcurrency = 2\n[providers.sim]\nspec = "openai_compatible:sim-1"\n'
                f'base_url = "{sim.openai_base_url}"\n'
                "price = { input_per_mtok = 1000.0, output_per_mtok = 1000.0 }\n"
            )
            base = ["run", "--config", str(cfg), "--input", str(inp), "--output", str(out),
                    "--ray", "--actors", "1", "--quiet"]  # fmt: skip
            assert main([*base, "--dry-run"]) == 0
            assert f"{n} requests, 0 already done, {n} to send" in capsys.readouterr().out
            assert sim.stats.received == 0 and not out.exists()

            assert main([*base, "--budget", "0.1"]) == 3  # stopped by the budget
            first = [orjson.loads(line) for line in out.read_bytes().splitlines()]
            spent = sum(r["asyncllm"]["cost_usd"] for r in first)
            assert 0 < len(first) < n and spent <= 0.1
            sent = sim.stats.received
            assert main([*base, "--budget", "0.1"]) == 3  # the same budget: mostly spent
            again = [orjson.loads(line) for line in out.read_bytes().splitlines()]
            assert sum(r["asyncllm"]["cost_usd"] for r in again) <= 0.1 + 1e-9
            assert sim.stats.received - sent <= max(2, len(first) // 4)

            assert main([*base, "--budget", "100"]) == 0
            assert main([*base, "--restart", "--budget", "100"]) == 0  # all over again
        finally:
            portal.call(sim.__aexit__, None, None, None)
    recs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(r["custom_id"] for r in recs) == sorted(f"q{i}" for i in range(n))
    assert list(tmp_path.glob("out.jsonl.*")), "--restart moved the old output aside"


def test_run_ray_refuses_what_it_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--config", "c.toml", "--input", "i.jsonl", "--ray", "--ordered"]
    assert main(argv) == 2
    assert "--ordered: not available with --ray" in capsys.readouterr().err
