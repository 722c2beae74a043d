"""The Redis example of docs/limits.md runs (the others run in tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "limits.md"
_BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def _redis_blocks() -> list[str]:
    return [
        m.group(2) for m in _BLOCK.finditer(DOC.read_text()) if "RedisRateLimiter(" in m.group(2)
    ]


@pytest.mark.redis
def test_redis_example_runs(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _redis_blocks()
    assert len(blocks) == 1
    monkeypatch.setenv("REDIS_URL", redis_url)
    exec(compile(blocks[0], f"{DOC.name}[redis]", "exec"), {})
