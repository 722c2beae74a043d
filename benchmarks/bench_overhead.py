"""The orchestrator's own CPU cost per request, against the raw SDK call, in the same run.

Run: ``python benchmarks/bench_overhead.py [--quick] [--concurrency 32] [--rounds 11]``.

Set-up: ``asyncllm simulate`` runs in its own process (pinned to the other core when there
are two), so its CPU is not counted; this process is pinned to core 0. Contestants, all
sending the same non-streamed request (16 output tokens) and the same streamed one:

- ``raw SDK``: ``openai.AsyncOpenAI(max_retries=0)`` on an httpx2 pool built exactly as
  asyncllm's shared pool (``HttpResources``), with the driver's default timeouts (600 s
  read, 10 s connect; the SDK's own default is 600 s read too), the baseline;
- ``raw SDK, no read t/o``: the same without a read timeout (what an SDK client on that
  pool gets when given no ``timeout``), for reference only;
- ``SDK driver only``: asyncllm's OpenAI driver with ``backend="sdk"`` called directly
  (``provider.complete``), no orchestrator;
- ``Client (sdk)``: ``asyncllm.Client`` over that driver, through ``client.complete`` /
  ``client.stream``: strategy, retries, breaker, limiter/budget seams, observers, ids;
- ``Client (native)`` and ``native driver only``: the same with the aiohttp backend.

Each measurement runs one contestant at ``--concurrency`` for a time slice; slices are
interleaved (every contestant, then the next round, order rotating), and the median of the
rounds is reported, so machine noise hits everyone alike. CPU is ``time.process_time()``
per request. The orchestrator's own cost is ``Client`` minus ``driver only`` on the same
backend; the headline ratio is ``Client (sdk)`` / ``raw SDK`` (target: within ~15%).
The SDK backend uses the same client, pool and transport but skips SDK work whose result
it would only undo (``create``'s re-transform of an already-wire body, typed models of
the answer), so its ratio can be below 1.

Results: a table on stdout and JSON in ``benchmarks/results/bench_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
from _common import RESULTS, simulator_process, timed_slice, write_json

from asyncllm import Client
from asyncllm._build import build_request
from asyncllm.providers import HttpResources
from asyncllm.providers._openai import OpenAIProvider

MODEL = "gpt-4o-mini"
KEY = "sk-bench"
PROMPT = "Write a short note about the weather."
TOKENS = 16
# OpenAIProvider's defaults (timeout=600.0, connect_timeout=10.0), given to the raw SDK too.
READ_TIMEOUT = 600.0
CONNECT_TIMEOUT = 10.0


class Contestant:
    name = ""

    async def complete(self) -> int:
        raise NotImplementedError

    async def stream(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources."""


class RawSDK(Contestant):
    name = "raw SDK"

    def __init__(self, url: str, *, read_timeout: bool = True) -> None:
        import openai

        if not read_timeout:
            self.name = "raw SDK, no read t/o"
        self.http = HttpResources()  # the same pool settings as a Client's
        self.client = openai.AsyncOpenAI(
            api_key=KEY,
            base_url=url + "/v1",
            max_retries=0,
            http_client=self.http.httpx_client(),
            # Like with like: the driver enforces its read timeout (a timer per read, and
            # an ``x-stainless-read-timeout`` header). Without it the SDK inherits the
            # pool's "no read timeout" and skips that work: shown as its own row.
            timeout=httpx2.Timeout(READ_TIMEOUT if read_timeout else None, connect=CONNECT_TIMEOUT),
        )

    async def complete(self) -> int:
        r = await self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=TOKENS
        )
        return len((r.choices[0].message.content or "").split())

    async def stream(self) -> int:
        s = await self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        n = 0
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
        return n

    async def close(self) -> None:
        await self.http.aclose()


class DriverOnly(Contestant):
    def __init__(self, url: str, backend: str) -> None:
        self.name = f"{backend} driver only"
        self.http = HttpResources()
        self.provider = OpenAIProvider(
            name="openai", model=MODEL, api_key=KEY, base_url=url + "/v1", backend=backend
        )

    async def open(self) -> None:
        await self.provider.open(self.http)

    async def complete(self) -> int:
        # Built per call, as Client.complete builds one per call.
        request = build_request(PROMPT, {"max_tokens": TOKENS})
        return len((await self.provider.complete(request)).text.split())

    async def stream(self) -> int:
        request = build_request(PROMPT, {"max_tokens": TOKENS})
        n = 0
        async with self.provider.stream(request) as s:
            async for chunk in s:
                if chunk.text:
                    n += 1
        return n

    async def close(self) -> None:
        await self.provider.aclose()
        await self.http.aclose()


class ViaClient(Contestant):
    def __init__(self, url: str, backend: str) -> None:
        self.name = f"Client ({backend})"
        provider = OpenAIProvider(
            name="openai", model=MODEL, api_key=KEY, base_url=url + "/v1", backend=backend
        )
        self.client = Client(provider)  # defaults: fallback, retries, breaker, logging

    async def open(self) -> None:
        await self.client.__aenter__()

    async def complete(self) -> int:
        return len((await self.client.complete(PROMPT, max_tokens=TOKENS)).text.split())

    async def stream(self) -> int:
        n = 0
        async with self.client.stream(PROMPT, max_tokens=TOKENS) as s:
            async for chunk in s:
                if chunk.text:
                    n += 1
        return n

    async def close(self) -> None:
        await self.client.aclose()


async def measure(c: Contestant, mode: str, seconds: float, concurrency: int) -> dict[str, float]:
    call: Callable[[], Awaitable[int]] = getattr(c, mode)
    count, cpu, wall = await timed_slice(
        call,
        (),
        expected=TOKENS,
        seconds=seconds,
        concurrency=concurrency,
        label=f"{c.name} {mode}",
    )
    return {"n": count, "cpu_us": 1e6 * cpu / count, "rps": count / wall}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    contestants: list[Contestant] = []
    with simulator_process("--output-tokens", str(TOKENS)) as (url, pinned):
        try:
            contestants = [
                RawSDK(url),
                RawSDK(url, read_timeout=False),
                DriverOnly(url, "sdk"),
                ViaClient(url, "sdk"),
                DriverOnly(url, "native"),
                ViaClient(url, "native"),
            ]
            for c in contestants:
                opener = getattr(c, "open", None)
                if opener is not None:
                    await opener()
            modes = ("complete", "stream")
            for c in contestants:  # warm-up: connections, imports, caches
                for mode in modes:
                    await measure(c, mode, 0.3, args.concurrency)
            samples: dict[tuple[str, str], list[dict[str, float]]] = {}
            for r in range(args.rounds):
                order = contestants[r % len(contestants) :] + contestants[: r % len(contestants)]
                for c in order:
                    for mode in modes:
                        m = await measure(c, mode, args.seconds, args.concurrency)
                        samples.setdefault((c.name, mode), []).append(m)
        finally:
            for c in contestants:
                await c.close()
    rows: dict[str, dict[str, Any]] = {}
    for (name, mode), ms in samples.items():
        row = rows.setdefault(name, {"name": name})
        raw = samples[("raw SDK", mode)]
        row[f"{mode}_cpu_us"] = statistics.median(m["cpu_us"] for m in ms)
        # Paired per round (measured back to back), then the median: robust to load that
        # drifts between rounds on a shared machine.
        row[f"{mode}_ratio"] = statistics.median(
            m["cpu_us"] / r["cpu_us"] for m, r in zip(ms, raw, strict=True)
        )
        row[f"{mode}_rps"] = statistics.median(m["rps"] for m in ms)
        row[f"{mode}_n"] = sum(int(m["n"]) for m in ms)
    for backend in ("sdk", "native"):
        client = samples_of(samples, f"Client ({backend})")
        driver = samples_of(samples, f"{backend} driver only")
        rows[f"Client ({backend})"]["orchestrator_us"] = {
            mode: statistics.median(
                c["cpu_us"] - d["cpu_us"] for c, d in zip(client[mode], driver[mode], strict=True)
            )
            for mode in client
        }
    return {
        "benchmark": "bench_overhead",
        "setup": {
            "simulator": "asyncllm simulate (subprocess)",
            "pinned": pinned,
            "concurrency": args.concurrency,
            "seconds_per_slice": args.seconds,
            "rounds": args.rounds,
            "output_tokens": TOKENS,
            "timeouts": {"read": READ_TIMEOUT, "connect": CONNECT_TIMEOUT},
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "results": list(rows.values()),
    }


def samples_of(
    samples: dict[tuple[str, str], list[dict[str, float]]], name: str
) -> dict[str, list[dict[str, float]]]:
    return {mode: ms for (n, mode), ms in samples.items() if n == name}


def print_table(report: dict[str, Any]) -> None:
    rows = {r["name"]: r for r in report["results"]}
    print(
        f"\nconcurrency {report['setup']['concurrency']}, CPU µs per request (median of "
        f"{report['setup']['rounds']} rounds), ratio to the raw SDK (median of per-round ratios)"
    )
    head = f"{'':22} {'complete':>10} {'ratio':>7} {'stream':>10} {'ratio':>7} {'req/s':>8}"
    print(head)
    print("-" * len(head))
    for r in report["results"]:
        print(
            f"{r['name']:22} {r['complete_cpu_us']:10.0f} {r['complete_ratio']:7.2f} "
            f"{r['stream_cpu_us']:10.0f} {r['stream_ratio']:7.2f} {r['complete_rps']:8.0f}"
        )
    for backend in ("sdk", "native"):
        own = rows[f"Client ({backend})"]["orchestrator_us"]
        print(
            f"orchestrator's own cost ({backend}: Client - driver, per round, median): "
            f"{own['complete']:+.0f} µs/request complete, {own['stream']:+.0f} µs/request stream"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per slice")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 s")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_overhead.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 3, 1.0
    report = asyncio.run(main(args))
    print_table(report)
    write_json(args.out, report)
    print(f"\nwrote {args.out}")
