"""The architecture is kept by a test: the import-linter contracts in ``pyproject.toml``.

No import circle anywhere in ``asyncllm`` (imports under ``TYPE_CHECKING`` and inside
functions count), the rooms layered as ``docs/architecture.md`` draws them, and every room
entered only through its package face.
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


ROOMS = (
    "batch",
    "cache",
    "cli",
    "cost",
    "limits",
    "orchestrator",
    "providers",
    "quality",
    "ray",
    "telemetry",
    "testing",
    "tools",
)


def test_each_room_face_names_what_it_exports_public_or_seam() -> None:
    """A room's face exports its user API (``__all__``) and, apart, the seams the rooms
    composing it need (``__seams__``): every asyncllm attribute it shows is one or the
    other, never both."""
    import importlib

    for room in ROOMS:
        face = importlib.import_module(f"asyncllm.{room}")
        public = set(face.__all__)
        seams = set(getattr(face, "__seams__", ()))
        assert not public & seams, (room, public & seams)
        for name in seams:
            assert hasattr(face, name), (room, name)
        shown = {
            n
            for n, v in vars(face).items()
            if not n.startswith("_")
            and getattr(v, "__module__", "").startswith("asyncllm")
            and not isinstance(v, type(face))
        }
        assert shown <= public | seams, (room, shown - public - seams)


def test_a_sibling_reaching_into_a_private_module_breaks_the_contract(tmp_path: Path) -> None:
    """The package-face contract covers the orchestrator: the client layer importing one of
    its private modules is reported."""
    import shutil

    shutil.copytree(
        ROOT / "asyncllm", tmp_path / "asyncllm", ignore=shutil.ignore_patterns("*.pyc")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    pipeline = tmp_path / "asyncllm" / "_pipeline.py"
    pipeline.write_text(
        pipeline.read_text() + "\nfrom .orchestrator._runtime import Call as _C  # noqa\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); " + _RUN],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "asyncllm._pipeline -> asyncllm.orchestrator._runtime" in out
