"""Client-side CPU cost of one LLM call: asyncllm vs raw HTTP, the official SDKs, LiteLLM.

Run: ``python benchmarks/bench_fastpath.py [--quick]``.

Set-up: the simulator runs as a separate process (``asyncllm simulate``) pinned to the
other core, so its work does not land in the numbers; this process is pinned to core 0.
Every contestant sends the same request at concurrency 64 for a fixed time slice per
measurement, and the slices are interleaved (every contestant, every mode, then the next
round; the order rotates each round), so machine noise hits all of them alike. Reported
values are medians over rounds:

- **CPU µs / request**: ``time.process_time()`` spent per non-streamed request (16 words);
- **CPU µs / chunk**: the marginal cost of one streamed chunk: (CPU of a 65-chunk stream
  minus CPU of a 1-chunk stream) / 64;
- **req/s**: non-streamed throughput (bounded by the simulator on the fast contestants).

Results go to ``benchmarks/results/bench_fastpath.json`` and the fast-path section of
``docs/benchmarks.md`` (with ``docs/benchmarks_fastpath.png``), with ratios to raw aiohttp;
a ``--quick`` run writes ``bench_fastpath-quick.json`` only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import ROOT, simulator_process, timed_slice
from _fastpath_clients import CONCURRENCY, Contestant, all_contestants
from _fastpath_report import write_report

T0 = time.perf_counter()
#: mode -> (method, size). "long" is a stream of ``LONG`` chunks (fewer in --quick).
MODES = {"complete": ("complete", 16), "stream1": ("stream", 1), "long": ("stream", 65)}


def import_times(runs: int, with_litellm: bool) -> dict[str, float]:
    """Median seconds to import each package in a fresh interpreter."""
    out: dict[str, float] = {}
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    mods = ("asyncllm", "openai", "anthropic") + (("litellm",) if with_litellm else ())
    for mod in mods:
        if importlib.util.find_spec(mod) is None:
            continue
        code = f"import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"
        samples = []
        for _ in range(runs):
            r = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
            )
            samples.append(float(r.stdout.strip().splitlines()[-1]))
        out[mod] = statistics.median(samples)
    return out


async def measure(c: Contestant, mode: str, seconds: float, long: int = 65) -> dict[str, float]:
    """Run ``mode`` at concurrency 64 for ``seconds``; CPU and wall time, request count."""
    method, size = MODES[mode]
    if mode == "long":
        size = long
    count, cpu, wall = await timed_slice(
        getattr(c, method),
        (size,),
        expected=size,
        seconds=seconds,
        concurrency=CONCURRENCY,
        label=f"{c.name} {mode}",
    )
    return {"n": count, "cpu_s": cpu, "wall_s": wall}


async def run(args: argparse.Namespace, base: str) -> dict[str, Any]:
    contestants = all_contestants(include_litellm=not args.no_litellm and _has_litellm())
    if args.only:
        contestants = [c for c in contestants if any(o in c.name for o in args.only)]
    for c in contestants:
        t0 = time.perf_counter()
        await c.setup(base)
        # Warm-up: opens the connections, fills caches (one wave of 64 in --quick).
        for mode in ("complete",) if args.quick else tuple(MODES):
            await measure(c, mode, 0.0 if args.quick else 0.3, args.long)
        print(f"{c.name}: ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    raw: dict[str, dict[str, list[dict[str, float]]]] = {
        c.name: {m: [] for m in MODES} for c in contestants
    }
    try:
        if args.profile:
            (c,) = [c for c in contestants if c.name == args.profile]
            prof = cProfile.Profile()
            prof.enable()
            await measure(c, args.profile_mode, args.seconds, args.long)
            prof.disable()
            pstats.Stats(prof).sort_stats(args.profile_sort).print_stats(45)
            return {}
        for r in range(args.rounds):
            order = contestants[r % len(contestants) :] + contestants[: r % len(contestants)]
            for c in order:
                for mode in MODES:
                    raw[c.name][mode].append(await measure(c, mode, args.seconds, args.long))
            print(
                f"round {r + 1}/{args.rounds} done at {time.perf_counter() - T0:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for c in contestants:
            await c.close()
    return {
        c.name: summarise(raw[c.name], args.long) | {"endpoint": c.endpoint} for c in contestants
    }


def summarise(rounds: dict[str, list[dict[str, float]]], long: int) -> dict[str, Any]:
    """Medians over rounds of per-request CPU, per-chunk marginal CPU and throughput."""

    def per_req(m: dict[str, float]) -> float:
        return m["cpu_s"] / m["n"] * 1e6

    complete = [per_req(m) for m in rounds["complete"]]
    s1 = [per_req(m) for m in rounds["stream1"]]
    sn = [per_req(m) for m in rounds["long"]]
    chunk = [(b - a) / (long - 1) for a, b in zip(s1, sn, strict=True)]
    return {
        "cpu_us_per_request": statistics.median(complete),
        "cpu_us_per_stream_request": statistics.median(s1),
        "cpu_us_per_chunk": statistics.median(chunk),
        "requests_per_s": statistics.median(m["n"] / m["wall_s"] for m in rounds["complete"]),
        "rounds": rounds,
    }


def _has_litellm() -> bool:
    if importlib.util.find_spec("litellm") is None:
        print("litellm is not installed: skipping it (pip install '.[bench]')", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short run (< 1 minute)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None, help="time slice per measurement")
    p.add_argument("--only", nargs="*", help="contestants whose name contains any of these")
    p.add_argument("--no-litellm", action="store_true")
    p.add_argument("--profile", help="cProfile one contestant (exact name) and print stats")
    p.add_argument("--profile-mode", default="complete", choices=sorted(MODES))
    p.add_argument("--profile-sort", default="tottime", help="pstats sort key (ncalls...)")
    p.add_argument("--no-report", action="store_true", help="do not write JSON or docs")
    args = p.parse_args(argv)
    # --quick is a smoke run (one round, short slices): its numbers are indicative only.
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.seconds = args.seconds or (0.15 if args.quick else 0.6)
    args.long = 17 if args.quick else 65

    with simulator_process("--output-tokens", "65") as (base, pinned):
        results = asyncio.run(run(args, base))
    if args.profile:
        return 0
    imports = import_times(1 if args.quick else 3, with_litellm=not args.quick)
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pinned": pinned,
        "rounds": args.rounds,
        "seconds_per_measurement": args.seconds,
        "concurrency": CONCURRENCY,
        "long_stream_chunks": args.long,
        "quick": args.quick,
    }
    data = {"meta": meta, "import_s": imports, "results": results}
    print(
        json.dumps(
            {
                k: {m: round(v, 1) for m, v in r.items() if isinstance(v, float)}
                for k, r in results.items()
            },
            indent=1,
        )
    )
    print(json.dumps({k: round(v, 3) for k, v in imports.items()}))
    if not args.no_report:
        path = write_report(data, ROOT)
        docs = "" if args.quick else " and docs/benchmarks.md"
        print(f"wrote {path}{docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
