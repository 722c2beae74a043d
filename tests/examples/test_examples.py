"""Every script in examples/ runs to completion on its embedded simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "examples").glob("*.py") if p.name != "fastapi_app.py")


def _run(script: str, tmp_path: Path) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_there_are_examples() -> None:
    assert {"agent_loop.py", "structured_output.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script: str, tmp_path: Path) -> None:
    out = _run(script, tmp_path)
    if script == "agent_loop.py":
        assert "answer after 2 turns: It is 14:05 in Oslo" in out
        assert "-> get_weather, local_time" in out
    if script == "structured_output.py":
        assert "rejected:" in out and "after one retry: vendor='ACME Corp'" in out


def test_fastapi_example_imports_without_starting_anything(tmp_path: Path) -> None:
    code = "import fastapi_app; print(sorted(r.path for r in fastapi_app.app.routes))"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    env["PYTHONPATH"] += os.pathsep + str(ROOT / "examples")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "/chat" in proc.stdout and "/chat/stream" in proc.stdout
