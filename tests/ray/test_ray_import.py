"""Ray is imported only when ``asyncllm.ray`` is; ``asyncllm.ray.__all__`` is its face."""

from __future__ import annotations

import subprocess
import sys


def test_asyncllm_and_its_cli_do_not_import_ray() -> None:
    code = (
        "import sys, asyncllm, asyncllm.batch, asyncllm.cli._main\n"
        "print(','.join(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_all_is_importable_and_documented() -> None:
    import asyncllm.ray

    names = asyncllm.ray.__all__  # its order is ruff's (RUF022)
    assert len(set(names)) == len(names)
    for name in names:
        obj = getattr(asyncllm.ray, name)
        assert isinstance(obj, str) or obj.__doc__, name
