"""CPU per request of the request path itself (client, pipeline, cache, strategy, attempt),
with an instant in-process provider, and a same-run comparison of two source trees.

Run: ``python benchmarks/bench_pipeline.py`` (this tree), or
``python benchmarks/bench_pipeline.py --trees OLD NEW --rounds 7`` to compare two checkouts
(e.g. a ``git worktree`` of the commit before a change): each round runs one worker process
per tree, alternating which goes first, and the table shows the median per scenario and
the ratio NEW/OLD of the medians, so machine noise hits both alike.

The provider answers at once (no HTTP, no sleep), so what is measured is everything
asyncllm adds around a driver: building the request, the observers (logging and metrics on,
as a user gets them), ids, the cache, the strategy, admission (breaker, budget, limiter)
and settling. ``bench_overhead.py`` measures the same against real HTTP and the raw SDK.

Scenarios (CPU µs per request, sequential ``await``s, after a warm-up):
``complete`` / ``stream`` (fallback over one provider), ``complete hedge`` (two providers,
hedge delay long enough that no backup is sent), ``complete cache miss`` (a unique prompt
each time, through an entered ``ResponseCache``), ``complete cache hit`` / ``stream cache
hit`` (the same prompt each time).

Results: a table on stdout and JSON in ``benchmarks/results/bench_pipeline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

SCENARIOS = (
    "complete",
    "stream",
    "complete hedge",
    "complete cache miss",
    "complete cache hit",
    "stream cache hit",
)


def _provider_class() -> type:
    from asyncllm import Chunk, Response, Usage
    from asyncllm.providers import BaseProvider

    usage = Usage(input_tokens=12, output_tokens=4)
    chunks = (
        Chunk(text="Hello"),
        Chunk(text=", "),
        Chunk(text="world"),
        Chunk(text="!"),
        Chunk(usage=usage, finish_reason="stop"),
    )

    class _Stream:
        rate_limits = None

        def __init__(self, model: str) -> None:
            self.model = model

        async def __aiter__(self) -> AsyncIterator[Chunk]:
            for c in chunks:
                yield c

    class Instant(BaseProvider):  # type: ignore[misc]
        kind = "openai"

        async def complete(self, request: Any) -> Any:
            return Response(
                text="Hello, world!",
                finish_reason="stop",
                usage=usage,
                provider=self.name,
                model=request.model or self.default_model,
                latency=0.0,
            )

        @asynccontextmanager
        async def _open(self, request: Any) -> AsyncIterator[_Stream]:
            yield _Stream(request.model or self.default_model)

        def stream(self, request: Any) -> Any:
            return self._open(request)

    return Instant


async def _measure(run: Callable[[int], Awaitable[Any]], n: int) -> float:
    for i in range(min(200, n)):  # warm-up
        await run(-i - 1)
    t0 = time.process_time()
    for i in range(n):
        await run(i)
    return (time.process_time() - t0) / n * 1e6


async def _worker(n: int, only: str | None = None) -> dict[str, float]:
    from asyncllm import Client, Hedge, ResponseCache

    instant = _provider_class()
    out: dict[str, float] = {}

    if only is None:
        async with Client([instant("a", model="m")]) as client:

            async def complete(i: int) -> Any:
                return await client.complete("Say hi", max_tokens=16)

            async def stream(i: int) -> Any:
                async with client.stream("Say hi", max_tokens=16) as s:
                    async for _ in s:
                        pass

            out["complete"] = await _measure(complete, n)
            out["stream"] = await _measure(stream, n)

    hedge = Hedge(delay=60.0)
    async with Client([instant("a", model="m"), instant("b", model="m")], strategy=hedge) as c2:

        async def hedged(i: int) -> Any:
            return await c2.complete("Say hi", max_tokens=16)

        out["complete hedge"] = await _measure(hedged, n)
    if only == "complete hedge":
        return out

    async with Client([instant("a", model="m")], cache=ResponseCache(max_entries=n + 500)) as c3:

        async def miss(i: int) -> Any:
            return await c3.complete(f"Say hi {i}", max_tokens=16, temperature=0)

        async def hit(i: int) -> Any:
            return await c3.complete("Say hi", max_tokens=16, temperature=0)

        async def stream_hit(i: int) -> Any:
            async with c3.stream("Say hi", max_tokens=16, temperature=0) as s:
                async for _ in s:
                    pass

        out["complete cache miss"] = await _measure(miss, n)
        await hit(0)
        out["complete cache hit"] = await _measure(hit, n)
        out["stream cache hit"] = await _measure(stream_hit, n)
    return out


def _run_tree(tree: Path, n: int, only: str | None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    extra = ["--only", only] if only else []
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "-n", str(n), *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=str(tree),
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker on {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs=2, type=Path, metavar=("OLD", "NEW"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-n", type=int, default=3000, help="requests per scenario")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["complete hedge"], help="run only this scenario")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_pipeline.json")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    if args.worker:
        print(json.dumps(asyncio.run(_worker(args.n, args.only))))
        return
    trees = [p.resolve() for p in args.trees] if args.trees else [HERE.parent]
    runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
    for r in range(args.rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        for t in order:
            runs[t].append(_run_tree(t, args.n, args.only))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    scenarios = [args.only] if args.only else list(SCENARIOS)
    med = {t: {s: statistics.median(x[s] for x in runs[t]) for s in scenarios} for t in trees}
    best = {t: {s: min(x[s] for x in runs[t]) for s in scenarios} for t in trees}
    # Noise only ever adds CPU time, so the best round is the steadiest estimate of the
    # cost; the median is shown beside it.
    header = f"{'scenario':<22}" + "".join(
        f"{t.name[:10] + ' best':>16}{'median':>9}" for t in trees
    )
    if len(trees) == 2:
        header += f"{'new/old best':>14}{'median':>9}"
    print(f"CPU µs per request, {args.rounds} rounds of {args.n} (best, median)")
    print(header)
    result: dict[str, Any] = {"rounds": args.rounds, "n": args.n, "trees": {}}
    for s in scenarios:
        line = f"{s:<22}" + "".join(f"{best[t][s]:>16.1f}{med[t][s]:>9.1f}" for t in trees)
        if len(trees) == 2:
            old, new = trees
            line += f"{best[new][s] / best[old][s]:>14.3f}{med[new][s] / med[old][s]:>9.3f}"
        print(line)
    for t in trees:
        result["trees"][str(t)] = {"best": best[t], "median": med[t], "runs": runs[t]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
