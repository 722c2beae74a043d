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
