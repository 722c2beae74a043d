"""Every ```python example in docs/ runs (offline: FakeProvider or the Simulator).

A block whose fence says ```python {.no-run} is shown but not run (it needs real API keys or
a service the docs cannot start). A block that only includes a file from ``examples/``
(``--8<-- "examples/x.py"``) is checked to exist: tests/examples runs every example.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)
_INCLUDE = re.compile(r'^--8<-- "([^"]+)"\s*$')


def _blocks() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        name = path.relative_to(DOCS).as_posix()
        for n, m in enumerate(_BLOCK.finditer(path.read_text(encoding="utf-8")), 1):
            found.append((f"{name}#{n}", m.group(1), m.group(2)))
    return found


BLOCKS = _blocks()
EXAMPLES = [
    (where, code)
    for where, fence, code in BLOCKS
    if "no-run" not in fence and not _INCLUDE.match(code.strip())
]
INCLUDES = [(where, code.strip()) for where, _, code in BLOCKS if _INCLUDE.match(code.strip())]


@pytest.mark.parametrize(("where", "line"), INCLUDES, ids=[w for w, _ in INCLUDES])
def test_included_examples_exist_and_are_tested(where: str, line: str) -> None:
    m = _INCLUDE.match(line)
    assert m is not None
    target = ROOT / m.group(1)
    assert target.is_file(), f"{where} includes a missing file {m.group(1)}"
    assert target.parent == ROOT / "examples", f"{where}: only examples/ files are run by tests"


def test_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_runs(where: str, code: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=45,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"{where} failed:\n{proc.stdout}\n{proc.stderr}"


def test_fences_render_as_code() -> None:
    # The site's Markdown (pymdownx.superfences) takes ```python or ```python {.class}; a
    # bare word after the language (```python no-run) is not a fence there, and the block's
    # comments render as headings.
    bad = [
        (where, fence)
        for where, fence, _ in BLOCKS
        if fence.strip() and not re.fullmatch(r"\s*\{[^}]*\}\s*", fence)
    ]
    assert bad == []
