"""What typed tools and structured output add to a call, against a plain call, same run.

Run: ``python benchmarks/bench_tools.py [--quick]``.

Every contestant calls ``Client.complete`` on an in-process ``FakeProvider`` (no network,
so only asyncllm's own CPU is measured) with the same reply; they take turns within each
round (``per_op_us``, CPU time), so a noisy neighbour slows them alike:

- ``plain``: no typed parameter, the baseline (the hot path must not pay for the feature);
- ``response_format=Model``: the strict schema (built once per model, then copied) and the
  answer's validation into the model;
- ``tools=[3 Tools]``: three tool specs sent, one call validated;
- ``run_tools (3 calls)``: running three validated calls concurrently in a task group.

Results: a table on stdout and JSON in ``benchmarks/results/bench_tools.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
from typing import Any

from _common import RESULTS, per_op_us, write_json
from pydantic import BaseModel

from asyncllm import Client, ToolCall
from asyncllm.testing import FakeProvider, FakeReply
from asyncllm.tools import Tool, run_tools


class Invoice(BaseModel):
    vendor: str
    total: float
    lines: list[str]


async def get_weather(city: str, days: int = 1) -> str:
    """Weather.

    Args:
        city: City.
        days: Days ahead.
    """
    return city


def get_time(tz: str) -> str:
    """Time in a zone."""
    return tz


async def lookup(order_id: str, verbose: bool = False) -> dict[str, str]:
    """Find an order."""
    return {"id": order_id}


TOOLS = [Tool.from_function(f) for f in (get_weather, get_time, lookup)]
CALLS = [
    ToolCall("a", "get_weather", '{"city":"Oslo"}'),
    ToolCall("b", "lookup", '{"order_id":"A1"}'),
    ToolCall("c", "get_weather", '{"city":"Rome","days":2}'),
]


async def main(quick: bool) -> dict[str, Any]:
    answer = '{"vendor":"ACME","total":120.5,"lines":["hosting","support"]}'
    plain = FakeProvider("plain", replies=[FakeReply(tokens=(answer,))])
    typed = FakeProvider("typed", replies=[FakeReply(tokens=(answer,))])
    tooled = FakeProvider("tooled", replies=[FakeReply.call(("get_weather", {"city": "Oslo"}))])
    n, rounds = (200, 5) if quick else (1000, 11)
    async with (
        Client(plain, log=False, metrics=False) as c1,
        Client(typed, log=False, metrics=False) as c2,
        Client(tooled, log=False, metrics=False) as c3,
    ):

        async def run_plain() -> None:
            await c1.complete("extract")

        async def run_format() -> None:
            r = await c2.complete("extract", response_format=Invoice)
            assert r.parsed is not None

        async def run_tooled() -> None:
            r = await c3.complete("weather", tools=TOOLS)
            assert r.tool_calls[0].parsed is not None

        async def run_calls() -> None:
            await run_tools(CALLS, TOOLS, timeout=5)

        us = await per_op_us(
            {
                "plain": run_plain,
                "response_format=Model": run_format,
                "tools=[3 Tools]": run_tooled,
                "run_tools (3 calls)": run_calls,
            },
            n,
            rounds,
            clock=time.process_time_ns,
        )
    base = us["plain"]
    print(f"{'contestant':<24} {'CPU us/call':>12} {'vs plain':>9}")
    for name, v in us.items():
        print(f"{name:<24} {v:>12.1f} {v / base:>8.2f}x")
    return {
        "machine": platform.platform(),
        "note": "CPU time per call, median of rounds; shared machine, ratios matter",
        "n": n,
        "rounds": rounds,
        "us_per_call": us,
        "ratio_vs_plain": {k: v / base for k, v in us.items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(main(args.quick))
    write_json(RESULTS / "bench_tools.json", report)
