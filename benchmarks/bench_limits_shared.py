"""Shared rate limiter across processes against a server counting a strict sliding window.

1, 4 and 16 worker processes (``tests/limits/limits_window_worker.py``, 16 request loops
each) share one ``RedisRateLimiter`` (``rpm=60, period=1``: 60 requests/s) against
``tests/limits/window_server.py``, which answers 429 to any request that would make 61 in
the last second. Reported per run: rate reached (fraction of 60/s), server 429s, the
busiest 1 s window the server saw, Jain's fairness index over every whole 10 s window
(minimum), Redis script calls per admission, and worker CPU per admission (whole worker:
HTTP client included). The same runs with the limiter as it was before issue 15 (commit
``21993db``, extracted with ``git archive`` and put first on the workers' ``PYTHONPATH``)
are the baseline, measured in the same run on the same machine.

Usage: ``python benchmarks/bench_limits_shared.py [--quick] [--out PATH]``; JSON goes to
``benchmarks/results/bench_limits_shared.json``. Needs ``redis-server`` and git.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from _common import RESULTS, ROOT, redis_server, write_json

sys.path.insert(0, str(ROOT / "tests" / "limits"))
from limits_window import run_shared, summarize

BASELINE_COMMIT = "21993db"


def baseline_tree(tmp: Path) -> Path:
    """The asyncllm package as of ``BASELINE_COMMIT`` in ``tmp``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BASELINE_COMMIT, "asyncllm"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    return tmp


async def main(quick: bool) -> dict[str, Any]:
    seconds = 12.0 if quick else 30.0
    counts = (1, 4) if quick else (1, 4, 16)
    out: dict[str, Any] = {"rpm": 60, "period": 1.0, "seconds": seconds, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp, redis_server() as url:
        assert url is not None, "redis-server is needed"
        old = baseline_tree(Path(tmp))
        old_env = os.environ | {"PYTHONPATH": str(old)}
        for label, env in (("current", None), ("baseline_21993db", old_env)):
            out[label] = {}
            for n in counts:
                run = await run_shared(
                    url, processes=n, rpm=60, period=1.0, seconds=seconds, env=env
                )
                s = summarize(run, fairness_window=10.0)
                out[label][str(n)] = s
                print(f"{label:17s} {n:2d} proc: {s['fraction_of_limit']:6.1%} of 60/s  "
                      f"429s={s['server_429s']:3d}  busiest={s['busiest_window']:3d}  "
                      f"jain_min={s['jain_min']:.3f}  "
                      f"calls/adm={s['redis_calls_per_admission']:.2f}  "
                      f"cpu/adm={s['cpu_us_per_admission']:.0f}us", flush=True)  # fmt: skip
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 s runs, 1 and 4 processes")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_limits_shared.json")
    ns = ap.parse_args()
    results = anyio.run(main, ns.quick)
    write_json(ns.out, results)
    print(f"written to {ns.out}")
