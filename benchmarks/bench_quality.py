"""What answer-quality checks cost per request, against no predicate in the same run.

Every answer is assessed (finish category, empty, output tokens; JSON and tool arguments
only when the request asked for them) whether or not a predicate is set: that cost is part
of every configuration here, including the baseline. What is measured on top of it:

- ``none``: ``Client.complete`` with no ``accept=`` (the baseline);
- ``ready-made``: ``accept=[not_truncated, not_empty, no_refusal]``;
- ``async``: one ``async def`` predicate (a coroutine awaited per answer);
- ``json``: a JSON answer to a ``response_format=json_object`` request, no predicate
  (the assessment parses it);
- ``json+matches``: the same with ``accept=matches(Model)`` (pydantic validates it again).

In-process ``FakeProvider`` (no I/O), so the numbers are the orchestrator's CPU per request.
Configurations run interleaved, round after round (order rotating); the median of the
rounds is reported, so machine noise hits every configuration alike. CPU time is
``time.process_time()``.

Usage: ``python benchmarks/bench_quality.py [--quick] [--out PATH]``; JSON goes to
``benchmarks/results/bench_quality.json`` by default.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
from _common import RESULTS, write_json
from pydantic import BaseModel

from asyncllm import Client, Response
from asyncllm.quality import matches, no_refusal, not_empty, not_truncated
from asyncllm.testing import FakeProvider, FakeReply

TEXT = FakeReply(tokens=("The", " login", " page", " times", " out", "."))
JSON = FakeReply(tokens=('{"status": "open", ', '"priority": 2, ', '"tags": ["login"]}'))


class Ticket(BaseModel):
    status: str
    priority: int
    tags: list[str]


async def judged(response: Response) -> None:
    return None


CONFIGS: dict[str, tuple[FakeReply, dict[str, Any], dict[str, Any]]] = {
    "none": (TEXT, {}, {}),
    "ready-made": (TEXT, {"accept": [not_truncated, not_empty, no_refusal]}, {}),
    "async": (TEXT, {"accept": judged}, {}),
    "json": (JSON, {}, {"response_format": {"type": "json_object"}}),
    "json+matches": (
        JSON,
        {"accept": matches(Ticket)},
        {"response_format": {"type": "json_object"}},
    ),
}


async def one_round(name: str, n: int) -> float:
    reply, client_kw, call_kw = CONFIGS[name]
    provider = FakeProvider("fake", replies=[reply])
    async with Client(provider, log=False, **client_kw) as client:
        for _ in range(200):
            await client.complete("Summarize the ticket", **call_kw)
        t0 = time.process_time()
        for _ in range(n):
            await client.complete("Summarize the ticket", **call_kw)
        return (time.process_time() - t0) / n * 1e6


async def main(n: int, rounds: int) -> dict[str, Any]:
    names = list(CONFIGS)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(await one_round(name, n))
    base = statistics.median(samples["none"])
    return {
        name: {
            "us_per_request": round(statistics.median(xs), 2),
            "ratio_to_none": round(statistics.median(xs) / base, 3),
            "rounds": [round(x, 2) for x in xs],
        }
        for name, xs in samples.items()
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_quality.json")
    args = ap.parse_args()
    n, rounds = (1_000, 3) if args.quick else (5_000, 9)
    results = anyio.run(main, n, rounds)
    print(f"{'config':<14}{'us/request':>12}{'vs none':>10}")
    for name, r in results.items():
        print(f"{name:<14}{r['us_per_request']:>12.1f}{r['ratio_to_none']:>10.3f}")
    write_json(
        args.out,
        {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "requests_per_round": n,
            "results": results,
        },
    )
