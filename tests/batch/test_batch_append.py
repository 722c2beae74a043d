"""The output appender: queued records go out together, and nothing queued is left behind."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from asyncllm.batch._output import FLUSH_BYTES, Appender


def _ids(path: Path) -> list[str]:
    return [orjson.loads(line)["custom_id"] for line in path.read_bytes().splitlines()]


async def test_added_records_reach_the_kernel_in_one_write_on_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    app = Appender(out)
    writes: list[int] = []
    real_write = os.write

    def counting(fd: int, data: bytes | memoryview) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting)
    for i in range(5):
        app.add({"custom_id": f"r{i}"})
    assert out.read_bytes() == b"" and app.written == 0  # queued, not written yet
    app.flush()
    assert len(writes) == 1
    assert _ids(out) == [f"r{i}" for i in range(5)] and app.written == 5
    app.flush()  # nothing queued: no write
    assert len(writes) == 1
    app.write({"custom_id": "r5"})  # write() goes out at once
    assert _ids(out)[-1] == "r5" and len(writes) == 2
    await app.aclose()


async def test_a_large_queue_flushes_by_itself(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    app = Appender(out)
    big = "x" * 1000
    n = FLUSH_BYTES // 1000 + 1
    for i in range(n):
        app.add({"custom_id": f"r{i}", "pad": big})
    # The byte bound was crossed: most went out without a flush call; close writes the rest.
    assert n - 3 <= len(_ids(out)) < n
    await app.aclose()
    assert _ids(out) == [f"r{i}" for i in range(n)]


async def test_sync_and_close_write_what_is_queued(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    app = Appender(out, fsync_interval=0.0)
    app.add({"custom_id": "a"})
    assert app.sync_due()  # a queued record counts as unsynced
    await app.sync()
    assert _ids(out) == ["a"]
    app.add({"custom_id": "b"})
    await app.aclose()
    assert _ids(out) == ["a", "b"]
