"""The tail at scale: hedged requests against a heavy-tailed provider, unhedged vs adaptive.

Run: ``python benchmarks/bench_tail.py [--quick] [--fake] [--base 0.02] [--requests 4000]``.

Set-up: ``asyncllm simulate --heavy-tail`` in its own process (pinned to the other core when
there are two) answers every request after a latency drawn from the classic tail: 89% at
``base``, 10% at 10x, 1% at 50x (each +-10%). Two clients in this process send the same
prompts at the same concurrency, in alternating blocks so machine noise hits both alike:

- **unhedged**: ``Client(provider)`` (fallback of one provider: one request per call);
- **hedged**: ``Client(provider, strategy=Hedge())``: adaptive delay = p96 of the latency
  observed for that provider and model (rolling window), a second backup staggered by its
  p90, backups capped by the default 5% hedge allowance. With one provider, the backup goes to
  the same server again, which draws a fresh latency: another replica, as in Dean &
  Barroso's "The Tail at Scale" (2013).

The hedged client is warmed up first (its adaptive delay needs ``min_samples`` latencies);
warm-up requests are not counted. Latency is measured end to end around
``client.complete``. "Extra" is the share of additional requests sent (backups / calls).

``--fake`` replaces the simulator by an in-process ``FakeProvider`` with the same latency
distribution on the real clock: no HTTP at all, so the numbers show the strategy alone
(useful where loopback HTTP is too noisy).

Results: a table on stdout and JSON in ``benchmarks/results/bench_tail.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import anyio
from _common import RESULTS, ROOT, simulator_process, write_json

from asyncllm import Client
from asyncllm.orchestrator import Hedge
from asyncllm.providers import Provider
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider
from asyncllm.testing import FakeProvider, FakeReply, heavy_tail


def simulator(args: argparse.Namespace) -> AbstractContextManager[tuple[str | None, bool]]:
    """``asyncllm simulate --heavy-tail`` in its own process (nothing with ``--fake``)."""
    if args.fake:
        return nullcontext((None, False))
    return simulator_process(
        "--latency", str(args.base), "--heavy-tail", "--output-tokens", "8",
        "--seed", str(args.seed),
    )  # fmt: skip


def make_provider(name: str, url: str | None, base: float, seed: int) -> Provider:
    if url is None:
        return FakeProvider(
            name, replies=[FakeReply(tokens=("ok",) * 8)], latency=heavy_tail(base), seed=seed
        )
    return OpenAICompatibleProvider(
        name=name, base_url=url + "/v1", model="sim-model", api_key="bench"
    )


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    n = len(sorted_values)
    rank = max(1, min(n, int(q * n + 0.999999)))
    return sorted_values[rank - 1]


async def run_block(client: Client, n: int, concurrency: int, out: list[float]) -> None:
    """``n`` requests at ``concurrency``; end-to-end latency of each appended to ``out``."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            await client.complete("Tell me something short.", max_tokens=8)
            out.append(time.perf_counter() - t0)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


def summarize(
    name: str, latencies: list[float], client: Client, before: dict[str, int]
) -> dict[str, Any]:
    values = sorted(latencies)
    now = client.statistics()["counters"]
    counters = {k: now[k] - before.get(k, 0) for k in now}  # the measured requests only
    requests = counters["requests"]
    # Backups that were sent (a backup cancelled before sending costs the server nothing).
    extra = counters["hedge"] / requests if requests else 0.0
    return {
        "name": name,
        "requests": len(values),
        "mean_ms": 1000 * sum(values) / len(values),
        "p50_ms": 1000 * quantile(values, 0.50),
        "p90_ms": 1000 * quantile(values, 0.90),
        "p99_ms": 1000 * quantile(values, 0.99),
        "p999_ms": 1000 * quantile(values, 0.999),
        "max_ms": 1000 * values[-1],
        "extra_requests": extra,
        "hedges": counters["hedge"],
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with simulator(args) as (url, _):
        plain = Client(make_provider("plain", url, args.base, args.seed), log=False)
        hedge = Hedge()  # adaptive p96, staggered backups (3 legs), 5% budget: the defaults
        hedged = Client(
            make_provider("hedged", url, args.base, args.seed + 1), strategy=hedge, log=False
        )
        async with plain, hedged:
            warm: list[float] = []
            await run_block(hedged, args.warmup, args.concurrency, warm)
            await run_block(plain, args.warmup // 4, args.concurrency, [])
            before = {
                "plain": plain.statistics()["counters"],
                "hedged": hedged.statistics()["counters"],
            }
            lat: dict[str, list[float]] = {"unhedged": [], "hedged": []}
            block = max(args.concurrency * 10, args.requests // args.blocks)
            done = 0
            while done < args.requests:
                n = min(block, args.requests - done)
                await run_block(plain, n, args.concurrency, lat["unhedged"])
                await run_block(hedged, n, args.concurrency, lat["hedged"])
                done += n
            window = hedged.statistics()["providers"]["hedged"]["latency"]
            rows = [
                summarize("unhedged", lat["unhedged"], plain, before["plain"]),
                summarize(
                    f"hedged (adaptive p{round(hedge.delay_quantile * 100)})",
                    lat["hedged"],
                    hedged,
                    before["hedged"],
                ),
            ]
    return {
        "benchmark": "bench_tail",
        "setup": {
            "provider": "fake (in-process, real clock)" if args.fake else "simulator subprocess",
            "latency": f"heavy_tail({args.base}): 89% x1, 10% x10, 1% x50, jitter 10%",
            "requests_per_config": args.requests,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "hedge": {
                "delay": "adaptive",
                "quantile": hedge.delay_quantile,
                "stagger": hedge.stagger,
                "allowance": hedge.allowance,
                "max_attempts": hedge.max_attempts,
                "min_samples": hedge.min_samples,
            },
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "adaptive_window": window,
        "results": rows,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\n{report['setup']['latency']}, {report['setup']['provider']}, "
        f"{report['setup']['requests_per_config']} requests each, "
        f"concurrency {report['setup']['concurrency']}"
    )
    head = f"{'':28} {'p50':>8} {'p90':>8} {'p99':>9} {'p99.9':>9} {'max':>9} {'extra':>7}"
    print(head)
    print("-" * len(head))
    for r in report["results"]:
        print(
            f"{r['name']:28} {r['p50_ms']:7.1f}ms {r['p90_ms']:7.1f}ms {r['p99_ms']:8.1f}ms "
            f"{r['p999_ms']:8.1f}ms {r['max_ms']:8.1f}ms {100 * r['extra_requests']:6.1f}%"
        )
    base, hedged = report["results"]
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms")):
        print(
            f"{label:>6}: {base[key]:7.1f} ms -> {hedged[key]:7.1f} ms "
            f"(x{base[key] / hedged[key]:.2f})"
        )
    print(f" extra: {100 * hedged['extra_requests']:.1f}% more requests sent")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=float, default=0.02, help="fast latency, seconds")
    parser.add_argument("--requests", type=int, default=4000, help="measured requests/config")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=8, help="alternating blocks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fake", action="store_true", help="in-process fake, no HTTP")
    parser.add_argument("--quick", action="store_true", help="1000 requests per config")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_tail.json")
    args = parser.parse_args()
    if args.quick:
        args.requests = 1000
    report = asyncio.run(main(args))
    print_table(report)
    write_json(args.out, report)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
