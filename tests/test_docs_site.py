"""The docs site builds with ``mkdocs build --strict`` and without a single warning.

Strict mode turns broken links, missing nav entries and docstrings mkdocstrings cannot
read into failures; the build goes to a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_site_builds_strict_without_warnings(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "WARNING" not in out, out
    reference = tmp_path / "site" / "reference" / "tools" / "index.html"
    assert "run_agent" in reference.read_text(encoding="utf-8")
    assert (tmp_path / "site" / "recipes" / "fastapi" / "index.html").is_file()
