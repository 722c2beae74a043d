"""Rate limiter benchmark: achieved rate against the limit, and CPU cost per acquire.

Measured in one run, each next to a baseline:

- CPU microseconds per ``acquire -> settle -> release`` (median of rounds, process time):
  ``RateLimiter`` uncontended (fast path) next to ``NoLimiter`` and an ``aiolimiter``
  ``AsyncLimiter`` acquire; ``RateLimiter`` contended (every acquire queues behind
  ``max_concurrency=8``) next to an ``asyncio.Semaphore(8)`` doing the same;
  ``RedisRateLimiter`` used sequentially (one Lua round trip to acquire, one to release)
  next to a bare redis-py ``PING`` round trip, CPU and wall time; and contended (64 tasks,
  8 shared slots), where releases ride on the waiting head's next call, with the number
  of script calls per acquire.
- Fairness against ``aiolimiter`` (which asyncllm does not use; it is in the ``bench``
  extra for this comparison): a large token acquisition behind a stream of small ones.
- Achieved rate against the simulator's own limits (``rpm=600, tpm=60000, period=1``,
  time scaled down 60x): in-process request-bound and token-bound runs, and four processes
  sharing one ``RedisRateLimiter``. Rate = admissions after the first period (the burst)
  over the time they took; 429s counted.

Usage: ``python benchmarks/bench_limits.py [--quick] [--out PATH]``; JSON goes to
``benchmarks/results/bench_limits.json`` by default. Redis parts need ``redis-server``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
from _common import RESULTS, ROOT, per_op_us, redis_server, write_json

from asyncllm import Usage
from asyncllm._hooks import NoLimiter
from asyncllm.limits import RateLimiter, RedisRateLimiter
from asyncllm.testing import Simulator

sys.path.insert(0, str(ROOT / "tests" / "limits"))
from limits_load import LoadResult, client_map

RPM, TPM, PERIOD = 600, 60_000, 1.0
USAGE = Usage(input_tokens=90, output_tokens=10)


async def cpu_us(body: Callable[[], Awaitable[None]], n: int, rounds: int) -> float:
    """Median CPU microseconds per iteration of ``body`` (run ``n`` times per round)."""
    return (await per_op_us({"": body}, n, rounds, clock=time.process_time_ns))[""]


async def bench_cpu(n: int, rounds: int) -> dict[str, float]:
    from aiolimiter import AsyncLimiter  # a baseline only; asyncllm does not use it

    none = NoLimiter()
    mem = RateLimiter(rpm=1e12, tpm=1e15, max_concurrency=1_000_000)
    aio = AsyncLimiter(1e12, 1.0)

    async def no_limiter() -> None:
        async with none.acquire(100, model="m") as p:
            p.settle(USAGE)

    async def memory_fast() -> None:
        async with mem.acquire(100, model="m") as p:
            p.settle(USAGE)

    async def aiolimiter_acquire() -> None:
        async with aio:
            pass

    out = {
        "no_limiter_us": await cpu_us(no_limiter, n, rounds),
        "aiolimiter_us": await cpu_us(aiolimiter_acquire, n, rounds),
        "memory_uncontended_us": await cpu_us(memory_fast, n, rounds),
    }
    out |= await bench_contended(n, rounds)
    return out


async def bench_fairness(seconds: float = 1.0) -> dict[str, float | None]:
    """What ``RateLimiter`` does that ``aiolimiter`` cannot: admit a large acquisition in turn.

    A token budget of 1000 per 0.1 s; 16 tasks keep taking 50 tokens each; a request needing
    800 tokens arrives behind them. ``aiolimiter`` wakes waiters by a heap ordered by amount,
    so small acquisitions keep overtaking the large one, which waits until traffic stops;
    ``RateLimiter`` has one FIFO across dimensions, so it is admitted after the ones ahead of
    it. Reported: the large request's wait in seconds (``None``: still waiting after
    ``seconds``), and the small admissions that overtook it.
    """
    from aiolimiter import AsyncLimiter  # a baseline only; asyncllm does not use it

    period, capacity, small, large = 0.1, 1000.0, 50, 800

    async def run(take: Callable[[int], Awaitable[None]]) -> tuple[float | None, int]:
        overtook = 0
        big_done = asyncio.Event()

        async def small_loop() -> None:
            nonlocal overtook
            while not big_done.is_set():
                await take(small)
                overtook += 1

        loop = asyncio.get_running_loop()
        smalls = [asyncio.create_task(small_loop()) for _ in range(16)]
        await asyncio.sleep(period)  # the small traffic is flowing
        overtook = 0
        start = loop.time()
        try:
            await asyncio.wait_for(take(large), seconds)
            waited: float | None = loop.time() - start
        except TimeoutError:
            waited = None
        big_done.set()
        for t in smalls:
            t.cancel()
        await asyncio.gather(*smalls, return_exceptions=True)
        return waited, overtook

    aio = AsyncLimiter(capacity, period)

    async def take_aio(n: int) -> None:
        await aio.acquire(n)

    ours = RateLimiter(tpm=capacity, period=period, burst=1.0)

    async def take_ours(n: int) -> None:
        async with ours.acquire(n, model="m") as p:
            p.settle(Usage(input_tokens=n, output_tokens=0))

    aio_wait, aio_overtook = await run(take_aio)
    our_wait, our_overtook = await run(take_ours)
    return {
        "fair_aiolimiter_wait_s": aio_wait,
        "fair_aiolimiter_overtaken": aio_overtook,
        "fair_ratelimiter_wait_s": our_wait,
        "fair_ratelimiter_overtaken": our_overtook,
    }


async def bench_contended(n: int, rounds: int) -> dict[str, float]:
    """``workers`` tasks each take a slot ``n // workers`` times; 8 slots: most acquires queue."""
    workers = 64

    async def run(take: Callable[[], Awaitable[None]]) -> float:
        samples = []
        for _ in range(rounds):
            t0 = time.process_time()
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(_loop, take, n // workers)
            samples.append((time.process_time() - t0) / (n // workers * workers) * 1e6)
        return statistics.median(samples)

    lim = RateLimiter(rpm=1e12, tpm=1e15, max_concurrency=8)
    sem = asyncio.Semaphore(8)

    async def limiter_take() -> None:
        async with lim.acquire(100, model="m") as p:
            await asyncio.sleep(0)
            p.settle(USAGE)

    async def semaphore_take() -> None:
        async with sem:
            await asyncio.sleep(0)

    return {
        "semaphore_contended_us": await run(semaphore_take),
        "memory_contended_us": await run(limiter_take),
    }


async def _loop(take: Callable[[], Awaitable[None]], k: int) -> None:
    for _ in range(k):
        await take()


async def bench_redis_cpu(url: str, n: int, rounds: int) -> dict[str, float]:
    from redis.asyncio import Redis

    async with RedisRateLimiter(
        rpm=1e12, tpm=1e15, max_concurrency=1_000_000, url=url, key=f"bench-{uuid.uuid4().hex}"
    ) as lim:
        client = Redis.from_url(url)

        async def ping() -> None:
            await client.ping()

        async def shared() -> None:
            async with lim.acquire(100, model="m") as p:
                p.settle(USAGE)

        await shared()
        await ping()
        out = {
            "redis_ping_cpu_us": await cpu_us(ping, n, rounds),
            "redis_limiter_cpu_us": await cpu_us(shared, n, rounds),
        }
        t0 = time.perf_counter()
        for _ in range(n):
            await ping()
        out["redis_ping_wall_us"] = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for _ in range(n):
            await shared()
        out["redis_limiter_wall_us"] = (time.perf_counter() - t0) / n * 1e6
        await client.aclose()
    out |= await bench_redis_contended(url, n)
    return out


async def bench_redis_contended(url: str, n: int) -> dict[str, float]:
    """64 tasks through 8 shared slots: releases ride on the waiting head's next call."""
    async with RedisRateLimiter(
        rpm=1e12, tpm=1e15, max_concurrency=8, url=url, key=f"bench-{uuid.uuid4().hex}"
    ) as lim:
        calls = 0
        real_call = lim._call

        async def counting(*args: Any, **kw: Any) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            return await real_call(*args, **kw)

        lim._call = counting  # type: ignore[method-assign]

        async def take() -> None:
            async with lim.acquire(100, model="m") as p:
                await asyncio.sleep(0)
                p.settle(USAGE)

        workers = 64
        per = max(1, n // workers)
        t0 = time.process_time()
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(_loop, take, per)
        cpu = (time.process_time() - t0) / (per * workers) * 1e6
    return {
        "redis_limiter_contended_cpu_us": cpu,
        "redis_calls_per_acquire_contended": calls / (per * workers),
    }


def _rates(res: LoadResult) -> dict[str, float]:
    req_rate, tok_rate = res.steady_rates()
    return {
        "requests": len(res.stamps),
        "rate_limited": res.statuses.get(429, 0),
        "req_per_s": round(req_rate, 1),
        "req_fraction_of_limit": round(req_rate / (RPM / PERIOD), 4),
        "tokens_per_s": round(tok_rate),
        "token_fraction_of_limit": round(tok_rate / (TPM / PERIOD), 4),
    }


async def bench_rate_memory(scale: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, n, chars, max_tokens, output in (
        ("request_bound", int(2400 * scale), 40, 16, 8),
        ("token_bound", int(2500 * scale), 400, 64, 16),
    ):
        async with Simulator(rpm=RPM, tpm=TPM, period=PERIOD, output_tokens=output) as sim:
            lim = RateLimiter(rpm=RPM, tpm=TPM, period=PERIOD)
            res = await client_map(
                lim, sim.openai_base_url, n, prompt_chars=chars, max_tokens=max_tokens
            )
            out[label] = _rates(res) | {"simulator_429s": sim.stats.rate_limited}
    return out


async def bench_rate_redis(url: str, scale: float, processes: int = 4) -> dict[str, Any]:
    """Four worker processes, each ``Client.map`` through one shared ``RedisRateLimiter``.

    Long prompts (~270 tokens) keep it token-bound at ~220 requests/s, so the run measures
    the shared limiter rather than the CPU of five processes on a small machine.
    """
    worker = ROOT / "tests" / "limits" / "limits_redis_worker.py"
    per = int(300 * scale)
    async with Simulator(rpm=RPM, tpm=TPM, period=PERIOD, output_tokens=16) as sim:
        args = [sim.openai_base_url, per, RPM, TPM, PERIOD, 1000, 64]
        key = f"bench-{uuid.uuid4().hex}"
        cmd = [sys.executable, str(worker), url, key, *map(str, args)]
        procs = [
            await anyio.open_process(cmd, stdin=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(processes)
        ]
        total = LoadResult()
        try:
            for p in procs:
                assert p.stdout is not None
                await p.stdout.receive()  # "ready"
            for p in procs:
                assert p.stdin is not None
                await p.stdin.send(b"go\n")
            for p in procs:
                assert p.stdout is not None
                data = b"".join([c async for c in p.stdout])
                await p.wait()
                total.merge(LoadResult.from_dict(orjson.loads(data)))
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
                await p.aclose()
        rates = _rates(total)
        return {"processes": processes, **rates, "simulator_429s": sim.stats.rate_limited}


async def main(quick: bool) -> dict[str, Any]:
    n, rounds, scale = (5_000, 3, 0.5) if quick else (50_000, 5, 1.0)
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "limits": {"rpm": RPM, "tpm": TPM, "period": PERIOD},
        "cpu": await bench_cpu(n, rounds),
        "rate_memory": await bench_rate_memory(scale),
        "fairness": await bench_fairness(),
    }
    with redis_server() as url:
        if url is None:
            results["rate_redis"] = "skipped: redis-server not installed"
        else:
            results["cpu"] |= await bench_redis_cpu(url, n // 10, rounds)
            results["rate_redis"] = await bench_rate_redis(url, scale)
    return results


def report(r: dict[str, Any]) -> None:
    f = r["fairness"]
    print("A large acquisition behind a stream of small ones (wait s; small ones that overtook):")
    for label, k in (("aiolimiter", "fair_aiolimiter"), ("RateLimiter", "fair_ratelimiter")):
        wait = f[k + "_wait_s"]
        shown = "starved (>1 s)" if wait is None else f"{wait:.3f}"
        print(f"  {label:22s} {shown:>14s}  overtaken by {f[k + '_overtaken']}")
    c = r["cpu"]
    print("CPU per acquire+settle+release (median, us):")
    print(f"  NoLimiter              {c['no_limiter_us']:8.2f}")
    print(f"  aiolimiter acquire     {c['aiolimiter_us']:8.2f}")
    print(f"  RateLimiter fast path  {c['memory_uncontended_us']:8.2f}")
    print(f"  Semaphore(8) contended {c['semaphore_contended_us']:8.2f}")
    print(f"  RateLimiter contended  {c['memory_contended_us']:8.2f}")
    if "redis_limiter_cpu_us" in c:
        for label, k in (("redis PING", "redis_ping"), ("RedisRateLimiter", "redis_limiter")):
            print(f"  {label:22s} {c[k + '_cpu_us']:8.2f} cpu {c[k + '_wall_us']:8.2f} wall")
        print(
            f"  RedisRateLimiter, 64 tasks / 8 slots {c['redis_limiter_contended_cpu_us']:8.2f} cpu"
            f"  ({c['redis_calls_per_acquire_contended']:.2f} Redis calls per acquire)"
        )
    print(f"Achieved rate vs simulator limits (rpm={RPM}, tpm={TPM}, period={PERIOD}s):")
    for label, v in [*r["rate_memory"].items(), ("redis_4_processes", r["rate_redis"])]:
        if isinstance(v, str):
            print(f"  {label}: {v}")
            continue
        print(f"  {label:18s} {v['requests']:5d} req  {v['req_per_s']:7.1f} req/s "
              f"({v['req_fraction_of_limit']:.1%})  {v['tokens_per_s']:6d} tok/s "
              f"({v['token_fraction_of_limit']:.1%})  429s={v['rate_limited']}")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_limits.json")
    ns = ap.parse_args()
    results = anyio.run(main, ns.quick)
    report(results)
    write_json(ns.out, results)
    print(f"written to {ns.out}")
