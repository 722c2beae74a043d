"""``asyncllm.ray.run_file`` (what ``asyncllm run --ray`` does): the local batch's output
contract on Ray. One record per input line, each custom_id once, resumable by rerunning,
and an actor killed mid-run loses no row and writes none twice.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from asyncllm.testing import Simulator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


def write_job(tmp: Path, sim: Simulator, n: int, concurrency: int = 8) -> tuple[Path, Path]:
    cfg = tmp / "job.toml"
    cfg.write_text(
        f"[client]\nconcurrency = {concurrency}\n[providers.sim]\n"
        f'spec = "openai_compatible:sim-1"\nbase_url = "{sim.openai_base_url}"\n'
    )
    inp = tmp / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"id": f"r{i}", "prompt": f"p {i}"}) + b"\n"
                             for i in range(n)))  # fmt: skip
    return cfg, inp


def records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_run_file_writes_each_record_once_and_resumes(
    ray_session: Any, tmp_path: Path
) -> None:
    from asyncllm.ray import run_file

    async with Simulator() as sim:
        cfg, inp = write_job(tmp_path, sim, 30)
        out = tmp_path / "out.jsonl"
        first = await run_file(cfg, inp, out, actors=2)
        again = await run_file(cfg, inp, out, actors=2)
        sent = sim.stats.completed
    recs = records(out)
    assert first["written"] == 30 and first["exit_code"] == 0
    assert again["written"] == 0 and again["skipped"] == 30 and sent == 30
    assert sorted(r["custom_id"] for r in recs) == sorted(f"r{i}" for i in range(30))


def _actor_pids() -> list[int]:
    """Our Ray session's map actors (children of its raylet running the stage)."""
    import ray

    node = ray._private.worker._global_node
    raylet = node.all_processes["raylet"][0].process.pid
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == raylet and b"AsyncLLMStage" in cmd:
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds actor processes in /proc")
async def test_killed_actor_loses_no_row_and_writes_none_twice(
    ray_session: Any, tmp_path: Path
) -> None:
    from asyncllm.ray import run_file

    n = 240
    async with Simulator(latency=0.1) as sim:
        cfg, inp = write_job(tmp_path, sim, n)
        out = tmp_path / "out.jsonl"
        killed: list[int] = []

        async def killer() -> None:
            await sim.wait_for(lambda st: st.completed >= 40, timeout=60)
            pids = _actor_pids()
            assert pids, "no actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            with anyio.fail_after(120):
                summary = await run_file(cfg, inp, out, actors=2)
    recs = records(out)
    ids = [r["custom_id"] for r in recs]
    print(summary, "killed", killed, "sent", sim.stats.received)
    assert killed
    assert len(ids) == len(set(ids)) == n  # none lost, none twice
    assert set(ids) == {f"r{i}" for i in range(n)}
    assert all(r["error"] is None for r in recs)
