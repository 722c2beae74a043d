"""Server cost of the simulator per request, against a bare ``aiohttp.web`` baseline.

Both servers run as separate processes and answer the same OpenAI chat completion (the
baseline reuses the simulator's parser and renderer, but skips limits, rate-limit headers,
faults and stats, so the comparison favours it). One aiohttp client sends keep-alive
requests with bounded concurrency; the figure of merit is *server CPU time per request*
(user + system, from ``/proc/PID/stat``), which is steadier on a shared machine than
throughput. Linux only.

Run: ``.venv/bin/python benchmarks/bench_simulator.py [--requests 10000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
from _common import free_port

_BASELINE = textwrap.dedent(
    """
    import sys, orjson
    from aiohttp import web
    from asyncllm.testing._sim_openai import OpenAIWire
    from asyncllm.testing._sim_text import plan

    WIRE = OpenAIWire()

    async def handle(request):
        req = WIRE.parse(orjson.loads(await request.read()))
        out = plan(req, output_tokens=16, seed=0, call_id="call_1")
        body = WIRE.render_json(req, out, "chatcmpl-1", 0)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    """
)


def _body(stream: bool) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": stream}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.post(url, json=_body(False)):
                    return
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def _load(url: str, n: int, concurrency: int, stream: bool) -> float:
    body = _body(stream)
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as s:

        async def one() -> None:
            async with sem, s.post(url, json=body) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")

        t = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - t


async def _measure(pid: int, url: str, n: int, conc: int, stream: bool) -> tuple[float, float]:
    """(server CPU microseconds per request, requests per second)."""
    await _load(url, 200, conc, stream)  # warm up
    before = _cpu_seconds(pid)
    wall = await _load(url, n, conc, stream)
    return (_cpu_seconds(pid) - before) / n * 1e6, n / wall


async def run(args: argparse.Namespace, pids: dict[str, int], urls: dict[str, str]) -> None:
    """Measure every case, interleaved over rounds so that drift hits each alike."""
    await _wait_ready(urls["sim"])
    await _wait_ready(urls["base"])
    cases = [
        ("simulator json", "sim", False),
        ("aiohttp.web json (baseline)", "base", False),
        ("simulator sse, 16 chunks", "sim", True),
    ]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in cases}
    for _ in range(args.rounds):
        for name, which, stream in cases:
            row = await _measure(pids[which], urls[which], args.requests, args.concurrency, stream)
            results[name].append(row)
    print(f"{args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}")
    medians = {}
    for name, rows in results.items():
        cpu = statistics.median(r[0] for r in rows)
        rps = statistics.median(r[1] for r in rows)
        medians[name] = cpu
        print(f"  {name:30s} {cpu:7.1f} us server CPU/request   {rps:8.0f} req/s")
    ratio = medians["aiohttp.web json (baseline)"] / medians["simulator json"]
    print(f"  baseline / simulator CPU per JSON request: {ratio:.2f}x")


def main() -> None:
    """Start both servers, measure, stop them."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    sim_port, base_port = free_port(), free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "asyncllm.cli", "simulate", "--port", str(sim_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = subprocess.Popen([sys.executable, "-c", _BASELINE, str(base_port)])
    path = "/v1/chat/completions"
    urls = {
        "sim": f"http://127.0.0.1:{sim_port}{path}",
        "base": f"http://127.0.0.1:{base_port}{path}",
    }
    try:
        asyncio.run(run(args, {"sim": sim.pid, "base": base.pid}, urls))
    finally:
        for p in (sim, base):
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
