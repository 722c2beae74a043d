"""Batch throughput and memory: ``run_batch`` against plain ``client.map`` in the same run.

::

    python benchmarks/bench_batch.py                  # 100,000 lines, then the 1M-line scan
    python benchmarks/bench_batch.py --lines 20000 --scan-lines 0

Both sides send the same requests (read from the same JSONL file) to one simulator
subprocess, with the same concurrency and the same client settings; ``client.map`` writes
nothing, ``run_batch`` parses every line, appends one record per answer and fsyncs. The
rounds alternate (map, batch, map, batch, ...) so that machine noise hits both alike.

Reported: requests per second of each side and their ratio (goal: batch >= 0.9 x map, the
median round), the CPU time this process spent per request on each side (less sensitive to
a shared machine than wall time: the client is CPU-bound at this concurrency), and the RSS
growth of the process during each side (goal: < 100 MB for 100,000 lines).

The scan part measures what grows with the input: the pre-pass over a file of
``--scan-lines`` lines (default 1,000,000) and the read of an output holding that many
records (the done-set of a resumed batch), in RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from _common import RESULTS, simulator_process, write_json

from asyncllm import Client
from asyncllm.batch import BatchOptions, load_config, run_batch, scan_input
from asyncllm.batch._output import prepare_output
from asyncllm.batch._scan import read_lines


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class Peak:
    """Samples RSS every 50 ms; ``growth`` is the peak minus the RSS at start."""

    def __init__(self) -> None:
        self.start = rss_mb()
        self.peak = self.start
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Peak:
        gc.collect()
        self.start = self.peak = rss_mb()
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss_mb())

    @property
    def growth(self) -> float:
        return self.peak - self.start


def write_input(path: Path, n: int) -> None:
    with path.open("wb") as f:
        for i in range(n):
            f.write(
                orjson.dumps({"custom_id": f"r{i}", "prompt": f"question {i}", "max_tokens": 4})
                + b"\n"
            )


def config(base_url: str, concurrency: int) -> dict[str, Any]:
    return {
        "client": {"concurrency": concurrency, "timeout": 60},
        "providers": {"sim": {"spec": "openai_compatible:m1", "base_url": base_url + "/v1"}},
    }


async def run_map(
    cfg: dict[str, Any], inp: Path, concurrency: int
) -> tuple[float, float, int, float]:
    conf = load_config(cfg)

    async def prompts() -> AsyncIterator[str]:
        async for _, line in read_lines(inp):
            if line:
                yield orjson.loads(line)["prompt"]

    ok = 0
    async with Client(conf.providers, timeout=conf.timeout, log=False) as client, Peak() as peak:
        t0, c0 = time.perf_counter(), time.process_time()
        async with client.map(prompts(), concurrency=concurrency, max_tokens=4) as results:
            async for r in results:
                ok += r.ok
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return elapsed, peak.growth, ok, cpu


def _remove(out: Path) -> None:
    out.unlink(missing_ok=True)
    Path(str(out) + ".state.json").unlink(missing_ok=True)


async def run_batch_side(
    cfg: dict[str, Any], inp: Path, out: Path, concurrency: int
) -> tuple[float, float, int, float]:
    _remove(out)
    async with Peak() as peak:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = await run_batch(cfg, inp, out, options=BatchOptions(concurrency=concurrency))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return elapsed, peak.growth, summary.progress.succeeded, cpu


def _write_output(out: Path, n: int, fingerprint: str) -> None:
    """An output holding ``n`` records of the scan input (as if a run had done them)."""
    record: dict[str, Any] = {
        "id": "batch_req_x",
        "custom_id": "",
        "response": {"status_code": 200, "body": {"choices": []}},
        "error": None,
        "asyncllm": {"line": 0, "cost_usd": 1e-6},
    }
    with out.open("wb") as f:
        for i in range(n):
            record["custom_id"] = f"r{i}"
            f.write(orjson.dumps(record) + b"\n")
    state = Path(str(out) + ".state.json")
    state.write_bytes(orjson.dumps({"version": 1, "fingerprint": fingerprint}))


async def scan_side(n: int, folder: Path) -> dict[str, float]:
    inp = folder / "scan.jsonl"
    out = folder / "scan.out.jsonl"
    write_input(inp, n)
    scan = await scan_input(inp)  # warm the page cache and imports
    _write_output(out, n, scan.fingerprint)
    async with Peak() as p1:
        t0 = time.perf_counter()
        await scan_input(inp)
        t_scan = time.perf_counter() - t0
    async with Peak() as p2:
        t0 = time.perf_counter()
        state = await prepare_output(out, fingerprint=scan.fingerprint, input_name=str(inp))
        t_read = time.perf_counter() - t0
        assert len(state.done) == n
        del state
    return {
        "lines": n,
        "prepass_s": round(t_scan, 2),
        "prepass_rss_growth_mb": round(p1.growth, 1),
        "read_output_s": round(t_read, 2),
        "read_output_rss_growth_mb": round(p2.growth, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"lines": args.lines, "concurrency": args.concurrency}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inp = folder / "in.jsonl"
        write_input(inp, args.lines)
        with simulator_process("--latency", str(args.latency)) as (url, pinned):
            result["pinned"] = pinned
            cfg = config(url, args.concurrency)
            # Warm-up: imports, connections, price tables.
            warm = folder / "warm.jsonl"
            write_input(warm, 500)
            await run_map(cfg, warm, args.concurrency)
            await run_batch_side(cfg, warm, folder / "warm.out", args.concurrency)
            rounds: list[dict[str, float]] = []
            for i in range(args.rounds):
                m = await run_map(cfg, inp, args.concurrency)
                b = await run_batch_side(cfg, inp, folder / "out.jsonl", args.concurrency)
                assert m[2] == args.lines and b[2] == args.lines, (m, b)
                row = {
                    "map_rps": args.lines / m[0],
                    "batch_rps": args.lines / b[0],
                    "map_cpu_us_per_req": 1e6 * m[3] / args.lines,
                    "batch_cpu_us_per_req": 1e6 * b[3] / args.lines,
                    "map_rss_growth_mb": m[1],
                    "batch_rss_growth_mb": b[1],
                }
                rounds.append(row)
                print(f"round {i + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in row.items()))
        map_rps = sorted(r["map_rps"] for r in rounds)[len(rounds) // 2]
        batch_rps = sorted(r["batch_rps"] for r in rounds)[len(rounds) // 2]
        map_cpu = sorted(r["map_cpu_us_per_req"] for r in rounds)[len(rounds) // 2]
        batch_cpu = sorted(r["batch_cpu_us_per_req"] for r in rounds)[len(rounds) // 2]
        result.update(
            map_cpu_us_per_req=round(map_cpu, 1),
            batch_cpu_us_per_req=round(batch_cpu, 1),
            cpu_ratio=round(batch_cpu / map_cpu, 3),
            rounds=rounds,
            map_rps=round(map_rps, 1),
            batch_rps=round(batch_rps, 1),
            ratio=round(batch_rps / map_rps, 3),
            batch_rss_growth_mb=round(max(r["batch_rss_growth_mb"] for r in rounds), 1),
            map_rss_growth_mb=round(max(r["map_rss_growth_mb"] for r in rounds), 1),
        )
        if args.scan_lines:
            result["scan"] = await scan_side(args.scan_lines, folder)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.005)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scan-lines", type=int, default=1_000_000)
    parser.add_argument("--no-save", action="store_true", help="do not write results/")
    ns = parser.parse_args()
    res = asyncio.run(main(ns))
    print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
    print(
        f"batch {res['batch_rps']:.0f} req/s vs map {res['map_rps']:.0f} req/s: "
        f"ratio {res['ratio']:.2f} (goal >= 0.90); CPU per request "
        f"{res['batch_cpu_us_per_req']:.0f} vs {res['map_cpu_us_per_req']:.0f} us; "
        f"batch RSS growth {res['batch_rss_growth_mb']:.0f} MB (goal < 100)",
        file=sys.stderr,
    )
    if not ns.no_save:
        write_json(RESULTS / "bench_batch.json", res)
