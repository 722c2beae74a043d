"""Soak: 100,000 requests through the full client, watching RSS, file descriptors and tasks,
then searching every output for the API key.

Load: the simulator in its own process (``asyncllm simulate``), both wire formats on the
native backend, complete and stream, under a rate limiter and a budget. Every 500th
request goes to a loopback server that answers 401 echoing the key it was sent, as real
providers do, so error paths carry the secret. Structured logs (the library's own events, through
``redact_secrets``) and stdlib logs go to files; every caught error is rendered (str, repr,
traceback). At the end the key is searched for in all of it.

Run::

    python benchmarks/bench_soak.py                 # 100,000 requests
    python benchmarks/bench_soak.py --requests 20000 --concurrency 64

Prints a JSON summary and writes ``benchmarks/results/soak.json``. Growth is reported as
ratios against the first sample of the same run (machine shared: absolute rates are noise).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import structlog
from _common import RESULTS, simulator_process, write_json
from aiohttp import web

from asyncllm import (
    AnthropicProvider,
    Client,
    MemoryBudget,
    ModelPrice,
    OpenAICompatibleProvider,
    Prices,
    RateLimiter,
    SpendLimit,
    redact_secrets,
)

KEY = "plainsoakkey7f3a9c"  # matches no key shape: only redaction by value catches it


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def echo_401(request: web.Request) -> web.StreamResponse:
    sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    body = {"error": {"message": f"Incorrect API key provided: {sent}", "type": "auth"}}
    return web.json_response(body, status=401)


async def run(n: int, concurrency: int, url: str, logdir: Path) -> dict[str, Any]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", echo_401)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bad_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    providers = [
        OpenAICompatibleProvider(
            name="oa", base_url=url + "/v1", model="sim-oa", api_key=KEY, stream_usage=True
        ),
        AnthropicProvider(name="an", base_url=url, model="sim-an", api_key=KEY),
    ]
    bad = OpenAICompatibleProvider(
        name="bad", base_url=f"http://127.0.0.1:{bad_port}/v1", model="m", api_key=KEY
    )
    prices = Prices(
        {
            (p, m): ModelPrice(0.01, 0.02)
            for p, m in [("oa", "sim-oa"), ("an", "sim-an"), ("bad", "m")]
        }
    )
    budget = MemoryBudget(SpendLimit(1e6))
    # One client per wire format, so both carry load (a fallback would rarely reach "an").
    clients = [
        Client(
            p,
            limits={p.name: RateLimiter(max_concurrency=concurrency, name=p.name)},
            budget=budget,
            pricing=prices,
        )
        for p in providers
    ]
    bad_client = Client(bad, pricing=prices)
    errors: list[str] = []
    samples: list[dict[str, float]] = []
    done = 0
    failures = 0

    async def one(i: int) -> None:
        nonlocal done, failures
        try:
            if i % 500 == 0:
                await bad_client.complete("hi", max_tokens=8)
            elif i % 2:
                client = clients[(i // 2) % 2]
                async with client.stream(f"q{i % 97}", max_tokens=8) as s:
                    async for _ in s:
                        pass
            else:
                await clients[(i // 2) % 2].complete(f"q{i % 97}", max_tokens=8)
        except Exception as exc:
            failures += 1
            errors.append(str(exc) + repr(exc) + "".join(traceback.format_exception(exc)))
        done += 1

    async def sampler() -> None:
        while True:
            gc.collect()
            samples.append(
                {
                    "requests": done,
                    "rss_mb": rss_mb(),
                    "fds": fds(),
                    "tasks": len(asyncio.all_tasks()),
                    "t": time.perf_counter(),
                }
            )
            await asyncio.sleep(2.0)

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(i)

    async with clients[0], clients[1], bad_client:
        watch = asyncio.create_task(sampler())
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        watch.cancel()
        stats = [c.statistics() for c in clients]
    await runner.cleanup()
    gc.collect()
    end = {"rss_mb": rss_mb(), "fds": fds(), "tasks": len(asyncio.all_tasks())}
    return {
        "requests": n,
        "failures": failures,
        "rate_per_s": n / elapsed,
        "samples": samples,
        "end": end,
        "errors_rendered": len(errors),
        "_outputs": [*errors, repr(stats), repr(budget.statistics())],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    logdir = RESULTS / "soak_logs"
    logdir.mkdir(parents=True, exist_ok=True)  # structlog.jsonl, stdlib.log
    events_path = logdir / "structlog.jsonl"
    stdlib_path = logdir / "stdlib.log"
    events = events_path.open("w")
    structlog.configure(
        processors=[
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(events),
    )
    logging.basicConfig(filename=stdlib_path, level=logging.DEBUG)
    with simulator_process("--output-tokens", "8") as (url, _pinned):
        out = asyncio.run(run(args.requests, args.concurrency, url, logdir))
    outputs = out.pop("_outputs")
    events.close()
    logging.shutdown()
    texts = {"structlog": events_path.read_text(), "stdlib_logging": stdlib_path.read_text()}
    texts["errors_and_statistics"] = "\n".join(outputs)
    summary_text = repr(out)
    texts["summary"] = summary_text
    leaks = {name: text.count(KEY) for name, text in texts.items()}
    first, last = (
        out["samples"][1] if len(out["samples"]) > 1 else out["samples"][0],
        out["samples"][-1],
    )
    out["secret_occurrences"] = leaks
    out["output_bytes_searched"] = {k: len(v) for k, v in texts.items()}
    out["growth"] = {
        "rss_ratio_last_vs_first": last["rss_mb"] / first["rss_mb"],
        "fds_first_last_end": [first["fds"], last["fds"], out["end"]["fds"]],
        "tasks_first_last_end": [first["tasks"], last["tasks"], out["end"]["tasks"]],
    }
    out["samples"] = out["samples"][:: max(1, len(out["samples"]) // 20)]
    write_json(RESULTS / "soak.json", out)
    print(
        {k: v for k, v in out.items() if k != "samples"},
        file=sys.stdout,
    )
    if any(leaks.values()):
        raise SystemExit(f"the key leaked: {leaks}")


if __name__ == "__main__":
    main()
