"""What a cache hit costs, next to what the call it saves costs, measured in the same run.

Measured (median of several rounds, microseconds per operation):

- ``key_us``: building the key of a typical request (normalization, orjson, SHA-256);
- ``memory_hit_us``: ``cache.complete`` answered from the in-memory backend, key included;
- ``bypass_overhead_us``: ``cache.complete(mode="bypass")`` minus the bare call it wraps;
- ``memory_miss_overhead_us``: a miss (lookup, shared-call task, store) minus the bare call;
- baselines with no cache: ``fake_call_us`` (in-process FakeProvider, no I/O) and
  ``simulator_call_us`` (one HTTP round trip to the local simulator through the
  openai_compatible driver: the cheapest real call there is);
- Redis on loopback (when ``redis-server`` is installed): ``redis_hit_us`` through the cache,
  next to ``redis_get_us``, a bare redis-py ``GET`` of the same entry.

structlog is configured at INFO, as in production, so the cache's debug events are dropped.

Usage: ``python benchmarks/bench_cache.py [--quick] [--out PATH]``; JSON goes to
``benchmarks/results/bench_cache.json`` by default.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from _common import RESULTS, per_op_us, redis_server, write_json

from asyncllm import ChatRequest, Response
from asyncllm._build import build_request
from asyncllm.cache import ResponseCache, cache_key
from asyncllm.providers import HttpResources
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider
from asyncllm.testing import FakeProvider, Simulator

ROUTE = (("openai", "openai", "gpt-4o-mini"),)


def typical_request(i: int = 0) -> ChatRequest:
    """A short chat: system prompt, three messages, sampling params, one tool."""
    return build_request(
        [
            {"role": "user", "content": f"Summarize the following ticket #{i}."},
            {"role": "assistant", "content": "Sure, paste it."},
            {"role": "user", "content": "The login page times out after 30 seconds. " * 4},
        ],
        {
            "system": "You are a concise support assistant.",
            "temperature": 0,
            "max_tokens": 256,
            "stop": ["\n\n"],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "lookup_ticket",
                        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                    },
                }
            ],
        },
    )


def sync_per_op_us(fn: Callable[[], Any], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter_ns() - t0) / n / 1000)
    return statistics.median(samples)


async def bench_memory(n: int, rounds: int) -> dict[str, float]:
    request = typical_request()
    provider = FakeProvider(model="gpt-4o-mini")

    async def call() -> Response:
        return await provider.complete(request)

    out: dict[str, float] = {}
    out["key_us"] = sync_per_op_us(lambda: cache_key(request, ROUTE), n, rounds)
    async with ResponseCache() as cache:
        await cache.complete(request, ROUTE, call)
        timed = await per_op_us(
            {
                "fake_call_us": call,
                "memory_hit_us": lambda: cache.complete(request, ROUTE, call),
                "bypass_us": lambda: cache.complete(request, ROUTE, call, mode="bypass"),
            },
            n,
            rounds,
        )
        out["fake_call_us"] = timed["fake_call_us"]
        out["memory_hit_us"] = timed["memory_hit_us"]
        out["bypass_overhead_us"] = timed["bypass_us"] - timed["fake_call_us"]
        counter = iter(range(10**9))
        # A miss on a distinct request each time, against the bare call of a distinct
        # request built the same way.
        timed = await per_op_us(
            {
                "miss": lambda: _miss(cache, provider, next(counter)),
                "bare": lambda: provider.complete(typical_request(next(counter))),
            },
            max(n // 10, 100),
            rounds,
        )
        out["memory_miss_overhead_us"] = timed["miss"] - timed["bare"]
    return out


async def _miss(cache: ResponseCache, provider: FakeProvider, i: int) -> Response:
    request = typical_request(i)

    async def call() -> Response:
        return await provider.complete(request)

    return await cache.complete(request, ROUTE, call)


async def bench_simulator(n: int, rounds: int) -> dict[str, float]:
    request = typical_request()
    async with Simulator(output_tokens=16) as sim:
        provider = OpenAICompatibleProvider(base_url=sim.openai_base_url, model="gpt-4o-mini")
        http = HttpResources()
        await provider.open(http)
        try:

            async def call() -> Response:
                return await provider.complete(request)

            await call()  # warm the connection pool
            return await per_op_us({"simulator_call_us": call}, max(n // 20, 50), rounds)
        finally:
            await provider.aclose()
            await http.aclose()


async def bench_redis(url: str, n: int, rounds: int) -> dict[str, float]:
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(url)  # redis_server() yields once the server answers
    try:
        request = typical_request()
        provider = FakeProvider(model="gpt-4o-mini")

        async def call() -> Response:
            return await provider.complete(request)

        async with ResponseCache.redis(url, namespace="bench") as cache:
            await cache.complete(request, ROUTE, call)
            key = cache.key_for(request, ROUTE)
            out = await per_op_us(
                {
                    "redis_hit_us": lambda: cache.complete(request, ROUTE, call),
                    "redis_get_us": lambda: raw.get(key),
                },
                max(n // 10, 200),
                rounds,
            )
            assert cache.statistics()["misses"] == 1, "every measured request must hit"
        return out
    finally:
        await raw.aclose()


async def main(quick: bool, redis_url: str | None) -> dict[str, Any]:
    """Run every measurement; returns the report."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    n, rounds = (2_000, 5) if quick else (10_000, 9)
    results: dict[str, Any] = {}
    results.update(await bench_memory(n, rounds))
    results.update(await bench_simulator(n, rounds))
    if redis_url is not None:
        results.update(await bench_redis(redis_url, n, rounds))
        results["redis_hit_vs_get"] = results["redis_hit_us"] / results["redis_get_us"]
    results["hit_vs_fake_call"] = results["memory_hit_us"] / results["fake_call_us"]
    results["hit_vs_simulator_call"] = results["memory_hit_us"] / results["simulator_call_us"]
    return {
        "benchmark": "bench_cache",
        "unit": "microseconds per operation (median of rounds); *_vs_* are ratios",
        "quick": quick,
        "ops_per_round": n,
        "rounds": rounds,
        "redis": redis_url is not None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "results": {k: round(v, 3) for k, v in results.items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations (CI smoke run)")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "bench_cache.json",
        help="where to write the JSON report",
    )
    args = parser.parse_args()
    with redis_server() as url:
        report = anyio.run(main, args.quick, url)
    write_json(args.out, report)
    print(json.dumps(report["results"], indent=2))
    print(f"written to {args.out}")
