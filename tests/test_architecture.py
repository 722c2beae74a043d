"""The architecture is kept by a test: the import-linter contracts in ``pyproject.toml``.

No import circle anywhere in ``asyncllm`` (imports under ``TYPE_CHECKING`` and inside
functions count), the rooms layered as ``docs/architecture.md`` draws them, and the pluggable
rooms entered only through their package faces.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_RUN = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(no_cache=True, no_logo=True))"
)


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_import_contracts_are_kept() -> None:
    proc = _lint(ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "0 broken" in out and "3 kept" in out, out


def test_the_contracts_catch_a_circle(tmp_path: Path) -> None:
    """The check can fail: a copy of the package with one upward import breaks it."""
    import shutil

    shutil.copytree(
        ROOT / "asyncllm", tmp_path / "asyncllm", ignore=shutil.ignore_patterns("*.pyc")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    types_py = tmp_path / "asyncllm" / "_types.py"
    types_py.write_text(types_py.read_text() + "\nfrom ._client import Client  # noqa\n")
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); " + _RUN],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "BROKEN" in out, out
