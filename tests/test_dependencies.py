"""Runtime dependencies are exactly what runtime code imports (issue 12).

A dependency nobody imports (``aiolimiter`` was one) costs every user an install for
nothing; an import of an undeclared package breaks a fresh install. Benchmarks' baselines
belong in the ``bench`` extra.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Distribution name -> the module it installs, where they differ.
_MODULE = {"genai-prices": "genai_prices"}


def _runtime_dependencies() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for spec in project["dependencies"]:
        dist = re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower()
        out[_MODULE.get(dist, dist.replace("-", "_"))] = dist
    return out


def _imported_top_levels() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "asyncllm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name.partition(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found


def test_every_runtime_dependency_is_imported_by_runtime_code() -> None:
    imported = _imported_top_levels()
    unused = {dist for module, dist in _runtime_dependencies().items() if module not in imported}
    assert not unused, f"runtime dependencies no runtime code imports: {sorted(unused)}"


def test_aiolimiter_is_a_benchmark_baseline_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "aiolimiter" not in _runtime_dependencies()
    assert any(d.startswith("aiolimiter") for d in project["optional-dependencies"]["bench"])
    assert "aiolimiter" not in _imported_top_levels()


def test_third_party_runtime_imports_are_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {
        re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower().replace("-", "_")
        for specs in project["optional-dependencies"].values()
        for spec in specs
    }
    # opentelemetry-api/-sdk install the ``opentelemetry`` namespace; pydantic ships with
    # (and pins) pydantic_core.
    extras |= {"opentelemetry"} if any(e.startswith("opentelemetry") for e in extras) else set()
    declared = set(_runtime_dependencies()) | extras | {"pydantic_core"}
    stdlib = set(sys.stdlib_module_names) | {"asyncllm", "__future__"}
    undeclared = {m for m in _imported_top_levels() - stdlib if m not in declared}
    assert not undeclared, f"imported but not declared: {sorted(undeclared)}"
