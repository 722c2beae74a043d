"""Cold start: import, open a client and complete one request, each in a fresh process.

Run: ``python benchmarks/bench_coldstart.py [--rounds 7]``.

Every measurement is a new Python process (what a CLI run or a serverless cold start
pays), talking to one ``asyncllm simulate`` subprocess on loopback. Inside the child:

- ``import``: importing the library (``aiohttp`` + ``orjson`` for the baseline,
  ``asyncllm`` + ``aiohttp`` (its driver's); for the SDK backend also ``openai``, whose
  import is the SDK backend's floor, and ``anthropic`` alone for reference);
- ``open+first``: from creating the session or ``Client`` to the first answer in hand,
  imports done. The model is ``gpt-4o-mini`` on an ``openai`` provider, so the answer is
  priced (genai-prices' prices) like a real one.

Configurations: raw aiohttp; asyncllm native; asyncllm native with the price index
disabled (genai-prices loaded on the first priced answer: the figure before issue 16);
asyncllm SDK backend; the official ``openai`` SDK alone (``AsyncOpenAI`` + one
``chat.completions.create``): the floor under asyncllm's SDK backend. Rounds interleave
the configurations (shared, noisy machine); medians are reported, with the ratio and the
difference to raw aiohttp.

Results: a table on stdout and JSON in ``benchmarks/results/bench_coldstart.json``.
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

KEY = "sk-bench-not-a-real-key"

_RAW = """
import time, sys
t0 = time.perf_counter()
import asyncio, aiohttp, orjson
t1 = time.perf_counter()
async def main():
    t = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        body = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 8,
                             "messages": [{"role": "user", "content": "hi"}]})
        async with s.post(URL + "/v1/chat/completions", data=body,
                          headers={"Authorization": "Bearer " + KEY,
                                   "Content-Type": "application/json"}) as r:
            obj = orjson.loads(await r.read())
        assert obj["choices"][0]["message"]["content"]
        return time.perf_counter() - t
first = asyncio.run(main())
print(t1 - t0, first)
"""

_OURS = """
import time, sys
t0 = time.perf_counter()
import anyio, asyncllm
import aiohttp  # the native driver imports it on first use: counted as import, as for raw
from asyncllm.providers import resolve
if BACKEND == "sdk":
    import openai
t1 = time.perf_counter()
if LEGACY:
    from asyncllm.cost import _prices
    _prices._INDEX.append(None)  # no index: genai-prices on the first priced answer
async def main():
    t = time.perf_counter()
    p = resolve("openai:gpt-4o-mini", api_key=KEY, base_url=URL + "/v1", backend=BACKEND)
    async with asyncllm.Client(p, log=False) as c:
        r = await c.complete("hi", max_tokens=8)
        assert r.text and r.cost_usd is not None and r.cost_usd > 0, r.cost_usd
        return time.perf_counter() - t
first = anyio.run(main)
print(t1 - t0, first)
"""

_SDK = """
import time, sys
t0 = time.perf_counter()
import asyncio, openai
t1 = time.perf_counter()
async def main():
    t = time.perf_counter()
    async with openai.AsyncOpenAI(api_key=KEY, base_url=URL + "/v1", max_retries=0) as c:
        r = await c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content
        return time.perf_counter() - t
first = asyncio.run(main())
print(t1 - t0, first)
"""

_IMPORT_ONLY = """
import time
t0 = time.perf_counter()
import {module}
print(time.perf_counter() - t0, 0.0)
"""


def child(code: str, url: str, **consts: Any) -> tuple[float, float]:
    pre = f"URL = {url!r}\nKEY = {KEY!r}\n" + "".join(f"{k} = {v!r}\n" for k, v in consts.items())
    out = subprocess.run(
        [sys.executable, "-c", pre + code], capture_output=True, text=True, check=True, timeout=60
    )
    imp, first = out.stdout.split()
    return float(imp), float(first)


CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "raw aiohttp": (_RAW, {}),
    "asyncllm native": (_OURS, {"BACKEND": "native", "LEGACY": False}),
    "asyncllm native, genai-prices (before)": (_OURS, {"BACKEND": "native", "LEGACY": True}),
    "asyncllm sdk": (_OURS, {"BACKEND": "sdk", "LEGACY": False}),
    "raw openai SDK (the SDK backend's floor)": (_SDK, {}),
    "import openai": (_IMPORT_ONLY.format(module="openai"), {}),
    "import anthropic": (_IMPORT_ONLY.format(module="anthropic"), {}),
}


def main(args: argparse.Namespace) -> dict[str, Any]:
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in CONFIGS}
    with simulator_process("--output-tokens", "8") as (url, _):
        for code, consts in CONFIGS.values():  # warm the OS file cache
            child(code, url, **consts)
        for _ in range(args.rounds):
            for name, (code, consts) in CONFIGS.items():
                samples[name].append(child(code, url, **consts))
    rows = []
    base_first = statistics.median(f for _, f in samples["raw aiohttp"])
    base_import = statistics.median(i for i, _ in samples["raw aiohttp"])
    for name, s in samples.items():
        imp = statistics.median(i for i, _ in s)
        first = statistics.median(f for _, f in s)
        rows.append(
            {
                "name": name,
                "import_ms": 1000 * imp,
                "open_first_ms": 1000 * first,
                "open_first_vs_raw": first / base_first if first else None,
                "open_first_minus_raw_ms": 1000 * (first - base_first) if first else None,
                "import_vs_raw": imp / base_import,
                "samples": [[round(1000 * i, 2), round(1000 * f, 2)] for i, f in s],
            }
        )
    return {
        "benchmark": "bench_coldstart",
        "setup": {
            "rounds": args.rounds,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "note": "fresh process per sample; shared machine (noisy): medians",
        },
        "results": rows,
    }


def print_table(report: dict[str, Any]) -> None:
    head = f"{'':40} {'import':>9} {'open+first':>11} {'vs raw':>7} {'- raw':>9}"
    print(head)
    for r in report["results"]:
        ratio = "" if r["open_first_vs_raw"] is None else f"{r['open_first_vs_raw']:6.2f}x"
        diff = (
            "" if r["open_first_minus_raw_ms"] is None else f"{r['open_first_minus_raw_ms']:+8.1f}"
        )
        first = f"{r['open_first_ms']:9.1f}ms" if r["open_first_ms"] else ""
        print(f"{r['name']:40} {r['import_ms']:7.1f}ms {first:>11} {ratio:>7} {diff:>9}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_coldstart.json")
    args = parser.parse_args()
    report = main(args)
    print_table(report)
    write_json(args.out, report)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
