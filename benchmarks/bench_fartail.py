"""The far tail: p99 and p99.9 with one backup (the old default) and staggered backups.

Run: ``python benchmarks/bench_fartail.py [--requests 2000] [--rounds 2]``.

Set-up (issue 16): two in-process ``FakeProvider`` s on the real clock, each answering after
a latency drawn from 93% 20 ms, 5% 200 ms, 2% 1 s (±5% jitter), 2,000 requests per
configuration at concurrency 16. Configurations, run in interleaved blocks so machine noise
hits all alike:

- **unhedged**: one provider, one request per call: the baseline;
- **one backup**: ``Hedge(quantile=0.95, max_attempts=2, stagger=None)``: the previous
  default (adaptive p95 delay, one backup);
- **default**: ``Hedge()``: first backup at the ``1 - 0.8 * budget`` quantile (p96), then
  up to one more, staggered by the backup provider's p90.

Each hedged client is warmed up (its adaptive delay needs ``min_samples`` latencies) and
warm-up requests are not counted. Complete latency is measured around ``client.complete``;
stream time to first token from ``client.stream`` until the first chunk is in hand.
"Extra" is backups *sent* per measured request (the client's honest ``hedge`` counter).
The best any hedging policy can reach on this distribution within the same 5% allowance
is computed exactly (``_hedge_limit.py``) and printed beside the measurements.

Results: a table on stdout and JSON in ``benchmarks/results/bench_fartail.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from pathlib import Path
from typing import Any

import anyio
from _common import RESULTS, ROOT, write_json
from _hedge_limit import best, default_schedule, extra, mixture_survival, quantile

from asyncllm import Client
from asyncllm.orchestrator import Hedge
from asyncllm.testing import FakeProvider, FakeReply, Mixture

COMPONENTS = ((0.93, 0.020), (0.05, 0.200), (0.02, 1.0))
JITTER = 0.05
ALLOWANCE = 0.05


def provider(name: str, seed: int) -> FakeProvider:
    return FakeProvider(
        name,
        replies=[FakeReply(tokens=("ok",) * 4)],
        latency=Mixture(COMPONENTS, jitter=JITTER),
        seed=seed,
    )


CONFIGS: dict[str, Hedge | None] = {
    "unhedged": None,
    "one backup (old default)": Hedge(quantile=0.95, max_attempts=2, stagger=None),
    "default Hedge()": Hedge(),
}


def make_client(name: str, hedge: Hedge | None, seed: int) -> Client:
    if hedge is None:
        return Client(provider(f"{name}-a", seed), log=False)
    return Client(
        [provider(f"{name}-a", seed), provider(f"{name}-b", seed + 7)], strategy=hedge, log=False
    )


async def run_block(
    client: Client, n: int, concurrency: int, stream: bool, out: list[float]
) -> None:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            if stream:
                async with client.stream("Tell me something short.", max_tokens=4) as s:
                    async for _ in s:
                        out.append(time.perf_counter() - t0)
                        break
            else:
                await client.complete("Tell me something short.", max_tokens=4)
                out.append(time.perf_counter() - t0)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


def _denied(client: Client) -> int:
    """Backups the allowance refused so far."""
    return sum(b["denied"] for b in client.statistics()["hedge_allowance"].values())


def q(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(p * len(v) + 0.999999) - 1))]


async def measure(args: argparse.Namespace, stream: bool) -> list[dict[str, Any]]:
    clients = {
        name: make_client(str(i), h, args.seed + 13 * i)
        for i, (name, h) in enumerate(CONFIGS.items())
    }
    lat: dict[str, list[float]] = {name: [] for name in clients}
    before: dict[str, dict[str, int]] = {}
    denied_before: dict[str, int] = {}
    for c in clients.values():
        await c.__aenter__()
    try:
        for name, c in clients.items():
            await run_block(c, args.warmup, args.concurrency, stream, [])
            before[name] = dict(c.statistics()["counters"])
            denied_before[name] = _denied(c)
        block = max(args.concurrency * 10, args.requests // args.blocks)
        done = 0
        while done < args.requests:
            n = min(block, args.requests - done)
            for name, c in clients.items():
                await run_block(c, n, args.concurrency, stream, lat[name])
            done += n
        rows = []
        for name, c in clients.items():
            now = c.statistics()["counters"]
            d = {k: now[k] - before[name].get(k, 0) for k in now}
            v = lat[name]
            rows.append(
                {
                    "name": name,
                    "what": "ttft" if stream else "complete",
                    "requests": len(v),
                    "p50_ms": 1000 * q(v, 0.5),
                    "p99_ms": 1000 * q(v, 0.99),
                    "p999_ms": 1000 * q(v, 0.999),
                    "max_ms": 1000 * max(v),
                    "top_ms": [round(1000 * x, 1) for x in sorted(v)[-6:]],
                    "latencies_ms": [round(1000 * x, 2) for x in v],
                    "extra_sent": d["hedge"] / d["requests"] if d["requests"] else 0.0,
                    "hedge_scheduled": d["hedge_scheduled"],
                    "hedge_sent": d["hedge"],
                    "hedge_unsent": d["hedge_unsent"],
                    "hedge_denied": _denied(c) - denied_before[name],
                }
            )
    finally:
        for c in clients.values():
            await c.__aexit__(None, None, None)
    return rows


def limits() -> dict[str, Any]:
    s = mixture_survival(COMPONENTS, JITTER)
    unhedged = {p: 1000 * quantile(s, (0.0,), p) for p in (0.99, 0.999)}
    opt = best(s, ALLOWANCE)
    d = default_schedule(s)
    return {
        "allowance": ALLOWANCE,
        "unhedged_ms": {str(k): v for k, v in unhedged.items()},
        "best": {
            str(p): {"ms": 1000 * v, "schedule_ms": [round(1000 * x, 1) for x in sch], "extra": e}
            for p, (v, sch, e) in opt.items()
        },
        "default": {
            "schedule_ms": [round(1000 * x, 1) for x in d],
            "extra": extra(s, d),
            "p99_ms": 1000 * quantile(s, d, 0.99),
            "p999_ms": 1000 * quantile(s, d, 0.999),
        },
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rounds: list[list[dict[str, Any]]] = []
    for _ in range(args.rounds):
        rows = await measure(args, stream=False)
        rows += await measure(args, stream=True)
        rounds.append(rows)
        args.seed += 101
    return {
        "benchmark": "bench_fartail",
        "setup": {
            "latency": "93% 20 ms, 5% 200 ms, 2% 1 s, jitter ±5%",
            "providers": "2 FakeProviders in process (real clock); unhedged: 1",
            "requests_per_config": args.requests,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "note": "shared machine (other engineers' test suites running): noisy",
        },
        "rounds": rounds,
        "limit": limits(),
    }


def print_table(report: dict[str, Any]) -> None:
    for i, rows in enumerate(report["rounds"]):
        print(f"\nround {i + 1}")
        head = (
            f"{'':34} {'p50':>7} {'p99':>8} {'p99.9':>8} {'x p99':>6} {'x p99.9':>8} {'extra':>6}"
        )
        print(head)
        base: dict[str, dict[str, Any]] = {}
        for r in rows:
            b = base.setdefault(r["what"], r)
            print(
                f"{r['what'] + ' ' + r['name']:34} {r['p50_ms']:6.1f} {r['p99_ms']:8.1f} "
                f"{r['p999_ms']:8.1f} {b['p99_ms'] / r['p99_ms']:6.2f} "
                f"{b['p999_ms'] / r['p999_ms']:8.2f} {100 * r['extra_sent']:5.1f}%"
            )
    pooled: dict[tuple[str, str], list[float]] = {}
    for rows in report["rounds"]:
        for r in rows:
            pooled.setdefault((r["what"], r["name"]), []).extend(r["latencies_ms"])
    print(f"\npooled over {len(report['rounds'])} rounds")
    base_p: dict[str, list[float]] = {}
    for (what, name), v in pooled.items():
        b = base_p.setdefault(what, v)
        p99, p999 = q(v, 0.99), q(v, 0.999)
        print(
            f"{what + ' ' + name:34} p99 {p99:7.1f} (x{q(b, 0.99) / p99:.2f})  "
            f"p99.9 {p999:7.1f} (x{q(b, 0.999) / p999:.2f})"
        )
    lim = report["limit"]
    print(f"\nlimit at {100 * lim['allowance']:.0f}% allowance (exact, this distribution):")
    for p, b in lim["best"].items():
        print(f"  best p{float(p) * 100:g}: {b['ms']:.1f} ms, schedule {b['schedule_ms']} ms")
    d = lim["default"]
    print(
        f"  default schedule {d['schedule_ms']} ms: p99 {d['p99_ms']:.1f}, "
        f"p99.9 {d['p999_ms']:.1f} ms, extra {100 * d['extra']:.1f}%"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_fartail.json")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    print_table(report)
    write_json(args.out, report)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
