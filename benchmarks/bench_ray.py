"""Batch on Ray Data: throughput with 1, 2 and 4 actors next to the local batch, same run.

::

    python benchmarks/bench_ray.py                 # 3,000 lines, latency 50 ms
    python benchmarks/bench_ray.py --lines 1000

One simulator subprocess (``asyncllm simulate``, 50 ms latency per answer, no limits)
answers every side. The same JSONL input goes through ``run_batch`` (the local batch,
concurrency 32) and through ``asyncllm.ray.run_file`` with 1, 2 and 4 actors (32 in flight
per actor) on a local Ray started with ``num_cpus=2``. Each side writes its own output.

Reported per side: wall time (Ray's includes starting the actors, as a user waits for it),
records per second over the wall time, and the ratio to the local batch measured in the
same run. The machine is small (2 cores, shared): more actors add CPU contention, not
cores, so the figures show overhead and scaling on one node, not a cluster.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
from _common import RESULTS, simulator_process, write_json

from asyncllm.batch import BatchOptions, run_batch

CONCURRENCY = 32


def job(tmp: Path, url: str, lines: int) -> tuple[Path, Path]:
    cfg = tmp / "job.toml"
    cfg.write_text(
        f"[client]\nconcurrency = {CONCURRENCY}\n[providers.sim]\n"
        f'spec = "openai_compatible:sim-1"\nbase_url = "{url}/v1"\n'
    )
    inp = tmp / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"id": f"r{i}", "prompt": f"p {i}"}) + b"\n"
                             for i in range(lines)))  # fmt: skip
    return cfg, inp


async def main(lines: int) -> dict[str, Any]:
    import ray

    from asyncllm.ray import run_file

    out: dict[str, Any] = {"lines": lines, "concurrency_per_actor": CONCURRENCY,
                           "cpus": os.cpu_count(), "runs": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as d, simulator_process("--latency", "0.05") as (url, _):
        tmp = Path(d)
        cfg, inp = job(tmp, url, lines)
        t0 = time.perf_counter()
        summary = await run_batch(
            cfg, inp, tmp / "local.jsonl", options=BatchOptions(concurrency=CONCURRENCY)
        )
        wall = time.perf_counter() - t0
        assert summary.progress.succeeded == lines, summary
        out["runs"]["local"] = {"wall_s": wall, "per_s": lines / wall}
        if hasattr(os, "sched_setaffinity"):  # simulator_process pinned us: Ray gets both
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for actors in (1, 2, 4):
                t0 = time.perf_counter()
                counts = await run_file(cfg, inp, tmp / f"ray{actors}.jsonl", actors=actors)
                wall = time.perf_counter() - t0
                assert counts["written"] == lines, counts
                steady = lines / max(1e-9, counts["seconds"] - counts["first_row_s"])
                out["runs"][f"ray_{actors}"] = {"wall_s": wall, "per_s": lines / wall,
                                                "actors_up_s": counts["first_row_s"],
                                                "after_first_row_per_s": steady}  # fmt: skip
        finally:
            ray.shutdown()
    base = out["runs"]["local"]["per_s"]
    for name, r in out["runs"].items():
        r["ratio_to_local"] = r["per_s"] / base
        extra = (
            f"  (first answers after {r['actors_up_s']:.1f} s, then "
            f"{r['after_first_row_per_s']:.0f}/s)"
            if "actors_up_s" in r
            else ""
        )
        print(f"{name:8s} {r['wall_s']:7.2f} s  {r['per_s']:8.1f} records/s  "
              f"x{r['ratio_to_local']:.2f} of local{extra}")  # fmt: skip
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_ray.json")
    ns = ap.parse_args()
    results = anyio.run(main, ns.lines)
    write_json(ns.out, results)
    print(f"written to {ns.out}")
