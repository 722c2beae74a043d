"""Memory: resident set size after 3,000 requests, asyncllm against raw aiohttp.

Run: ``python benchmarks/bench_memory.py [--requests 3000] [--rounds 3] [--trace]``.

Each sample is a fresh process sending ``--requests`` non-streamed requests at concurrency
16 to one ``asyncllm simulate`` subprocess on loopback, then reporting its RSS (``VmRSS``)
and peak (``VmHWM``) after a ``gc.collect()``. Configurations: raw aiohttp + orjson (the
baseline), asyncllm native (``openai:gpt-4o-mini``, priced), and asyncllm native with the
price index disabled (genai-prices loaded: the figure before issue 16), and asyncllm with
``rich`` made unimportable: ``import structlog`` imports rich (and pygments) when it is
installed, for its console renderer; that is ~4 MB not of asyncllm's making, absent where
rich is not installed (a plain ``pip install asyncllm``). Rounds interleave
configurations (shared, noisy machine); medians and ratios to raw aiohttp are reported.

``--trace`` also runs asyncllm under ``tracemalloc`` and prints the largest live
allocations by file after the requests: what holds the memory.

Results: a table on stdout and JSON in ``benchmarks/results/bench_memory.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, simulator_process, write_json

_PRELUDE = """
import gc, sys
def rss():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024
    return out
"""

_RAW = """
import asyncio, aiohttp, orjson
async def main():
    async with aiohttp.ClientSession() as s:
        body = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 8,
                             "messages": [{"role": "user", "content": "hi"}]})
        left = N
        async def worker():
            nonlocal left
            while left > 0:
                left -= 1
                async with s.post(URL + "/v1/chat/completions", data=body,
                                  headers={"Authorization": "Bearer k",
                                           "Content-Type": "application/json"}) as r:
                    obj = orjson.loads(await r.read())
                assert obj["choices"][0]["message"]["content"]
        await asyncio.gather(*(worker() for _ in range(16)))
asyncio.run(main())
"""

_OURS = """
if NO_RICH:
    sys.modules["rich"] = None  # as where rich is not installed: structlog then skips it
import anyio, asyncllm
from asyncllm.providers import resolve
if LEGACY:
    from asyncllm.cost import _prices
    _prices._INDEX.append(None)
if TRACE:
    import tracemalloc
    tracemalloc.start(8)
async def main():
    p = resolve("openai:gpt-4o-mini", api_key="k", base_url=URL + "/v1", backend="native")
    async with asyncllm.Client(p, log=False) as c:
        left = N
        async def worker():
            nonlocal left
            while left > 0:
                left -= 1
                r = await c.complete("hi", max_tokens=8)
                assert r.text
        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(worker)
        if TRACE:
            gc.collect()
            snap = tracemalloc.take_snapshot()
            for stat in snap.statistics("filename")[:25]:
                print("TRACE", stat, file=sys.stderr)
anyio.run(main)
"""

_END = """
gc.collect()
m = rss()
print(m["VmRSS"], m["VmHWM"])
"""


def child(code: str, url: str, **consts: Any) -> tuple[float, float, str]:
    pre = f"URL = {url!r}\n" + "".join(f"{k} = {v!r}\n" for k, v in consts.items())
    out = subprocess.run(
        [sys.executable, "-c", pre + _PRELUDE + code + _END],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    r, hwm = out.stdout.split()
    return float(r), float(hwm), out.stderr


def main(args: argparse.Namespace) -> dict[str, Any]:
    configs: dict[str, tuple[str, dict[str, Any]]] = {
        "raw aiohttp": (_RAW, {"N": args.requests}),
        "asyncllm native": (_OURS, {"N": args.requests, "LEGACY": False, "NO_RICH": False}),
        "asyncllm native, genai-prices (before)": (
            _OURS,
            {"N": args.requests, "LEGACY": True, "NO_RICH": False},
        ),
        "asyncllm native, rich not importable": (
            _OURS,
            {"N": args.requests, "LEGACY": False, "NO_RICH": True},
        ),
    }
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    trace = ""
    with simulator_process("--output-tokens", "8") as (url, _):
        for _ in range(args.rounds):
            for name, (code, consts) in configs.items():
                r, hwm, _err = child(code, url, TRACE=False, **consts)
                samples[name].append((r, hwm))
        if args.trace:
            _, _, trace = child(
                _OURS, url, N=args.requests, LEGACY=False, NO_RICH=False, TRACE=True
            )
    base = statistics.median(r for r, _ in samples["raw aiohttp"])
    rows = []
    for name, s in samples.items():
        r = statistics.median(x for x, _ in s)
        rows.append(
            {
                "name": name,
                "rss_mb": r,
                "peak_mb": statistics.median(h for _, h in s),
                "rss_vs_raw": r / base,
                "samples": s,
            }
        )
    return {
        "benchmark": "bench_memory",
        "setup": {
            "requests": args.requests,
            "concurrency": 16,
            "rounds": args.rounds,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "note": "fresh process per sample; shared machine: medians",
        },
        "results": rows,
        "trace": [line.removeprefix("TRACE ") for line in trace.splitlines() if "TRACE" in line],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_memory.json")
    args = parser.parse_args()
    report = main(args)
    for r in report["results"]:
        print(
            f"{r['name']:40} RSS {r['rss_mb']:6.1f} MB  peak {r['peak_mb']:6.1f} MB  "
            f"{r['rss_vs_raw']:5.2f}x raw"
        )
    for line in report["trace"]:
        print("  ", line)
    write_json(args.out, report)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
