"""Run worker processes sharing one ``RedisRateLimiter`` against a strict-window server,
and the measures taken from them: rate, 429s, fairness (Jain's index) and Redis calls.

Used by ``test_limits_redis_window.py`` and ``benchmarks/bench_limits_shared.py``.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import orjson
from window_server import window_server

__all__ = ["jain", "run_shared", "summarize"]

WORKER = Path(__file__).with_name("limits_window_worker.py")


def jain(xs: list[float]) -> float:
    """Jain's fairness index: 1.0 when all equal, 1/n when one takes everything."""
    total, squares = sum(xs), sum(x * x for x in xs)
    return 1.0 if squares == 0 else total * total / (len(xs) * squares)


async def run_shared(
    redis_url: str, *, processes: int, rpm: int, period: float, seconds: float,
    concurrency: int = 16, env: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``processes`` workers for ``seconds`` against a window of ``rpm`` per ``period``.

    ``env`` replaces the workers' environment (the benchmark points ``PYTHONPATH`` at an
    older asyncllm to measure it in the same run).
    """
    key = f"win-{uuid.uuid4().hex}"
    async with window_server(rpm, period) as server:
        cmd = [sys.executable, str(WORKER), redis_url, key, server.url + "/chat/completions",
               str(rpm), str(period), str(seconds), str(concurrency)]  # fmt: skip
        procs = [
            await anyio.open_process(cmd, stdin=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            for _ in range(processes)
        ]
        outputs: list[dict[str, Any]] = []
        try:
            with anyio.fail_after(60 + 2 * seconds):
                for p in procs:
                    assert p.stdout is not None
                    line = await p.stdout.receive()
                    assert line.startswith(b"ready"), line.decode(errors="replace")
                for p in procs:
                    assert p.stdin is not None
                    await p.stdin.send(b"go\n")
                for p in procs:
                    assert p.stdout is not None
                    data = b"".join([c async for c in p.stdout])
                    assert await p.wait() == 0, data.decode(errors="replace")
                    outputs.append(orjson.loads(data))
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
                await p.aclose()
    return {"outputs": outputs, "arrivals": server.arrivals, "rejected": server.rejected,
            "rpm": rpm, "period": period, "seconds": seconds}  # fmt: skip


def summarize(
    run: dict[str, Any], *, fairness_window: float = 10.0, fairness_from: float = 0.0
) -> dict[str, Any]:
    """Rate over the run, 429s, the busiest window seen by the server, Jain's index per
    ``fairness_window`` (all windows wholly inside the run, from ``fairness_from`` seconds
    in), Redis calls and CPU per admission."""
    outs, period, limit = run["outputs"], run["period"], run["rpm"]
    stamps = sorted(t for o in outs for t in o["stamps"])
    t0, t1 = stamps[0], stamps[0] + run["seconds"]
    arrivals = run["arrivals"]
    busiest, j = 0, 0
    for i, t in enumerate(arrivals):
        while arrivals[j] <= t - period:
            j += 1
        busiest = max(busiest, i - j + 1)
    jains = []
    w = t0 + fairness_from
    while w + fairness_window <= t1 + 1e-9:
        counts = [sum(1 for s in o["stamps"] if w <= s < w + fairness_window) for o in outs]
        jains.append(jain(counts))
        w += fairness_window
    if not jains:  # a run shorter than one fairness window: the whole run
        jains.append(jain([len(o["stamps"]) for o in outs]))
    admitted = sum(o["acquired"] for o in outs)
    refused = sorted(t - t0 for o in outs for t in o.get("refused", ()))
    return {
        "processes": len(outs),
        "admitted": admitted,
        "rate_per_s": len(stamps) / run["seconds"],
        "fraction_of_limit": len(stamps) / run["seconds"] / (limit / period),
        "server_429s": run["rejected"],
        "refused_at_s": [round(t, 3) for t in refused[:20]],
        "busiest_window": busiest,
        "limit_per_window": limit,
        "jain_min": min(jains),
        "jain_windows": len(jains),
        "per_process": [len(o["stamps"]) for o in outs],
        "redis_calls_per_admission": sum(o["redis_calls"] for o in outs) / max(1, admitted),
        "cpu_us_per_admission": sum(o["cpu_s"] for o in outs) / max(1, admitted) * 1e6,
    }
