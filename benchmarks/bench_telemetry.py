"""What metrics, budgets and pricing cost per request, measured against "off" in the same run.

Two measurements, both in CPU time (``time.process_time``) per logical request, the best of
several rounds (the machine is noisy; the minimum is the least disturbed run):

- ``hooks``: the per-request sequence of calls the orchestrator makes into the seams
  (``request_started``, ``budget.reserve`` entered and left, ``attempt_started``,
  ``attempt_first_token``, ``pricing.cost``, ``reservation.settle``, ``attempt_finished``,
  ``request_finished``), with the no-op defaults (``off``) and with each component on.
  This isolates the components' own cost.
- ``client`` (when the Client accepts ``observers=``/``budget=``/``pricing=``): the same
  configurations through ``Client.complete`` with an in-process ``FakeProvider`` (no I/O),
  so the overhead is put next to the whole orchestrator's per-request cost.

``otel`` is the OpenTelemetry observer on the SDK (spans batched to an exporter that drops
them, metrics aggregated in memory): the price of tracing, for comparison.

Also: ``Prices.cost`` (cached coefficients) next to genai-prices' own ``calc_price`` on the
same usage.

structlog is configured at WARNING (as in production); budgets are sized so nothing is
refused and no threshold fires during the run.

Usage: ``python benchmarks/bench_telemetry.py [--quick] [--out PATH]``; JSON goes to
``benchmarks/results/bench_telemetry.json`` by default.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from _common import RESULTS, write_json

from asyncllm import ChatRequest, Message, Response, Usage
from asyncllm._hooks import AttemptInfo, NoBudget, NoObserver, NoPricing, RequestInfo
from asyncllm.cost import MemoryBudget, Prices, SpendLimit
from asyncllm.telemetry import MetricsObserver

REQ = ChatRequest(
    messages=(Message("user", "Summarize the ticket: the login page times out. " * 3),),
    model="gpt-4o-mini",
    max_tokens=256,
    tags={"tenant": "acme"},
)
USAGE = Usage(input_tokens=420, output_tokens=180, cache_read_tokens=128)


def configs(prices: Prices) -> dict[str, dict[str, Any]]:
    """Component set-ups to compare; fresh objects for every round."""

    def budget() -> MemoryBudget:
        return MemoryBudget(
            SpendLimit(1e9), SpendLimit(1e9, per_tag="tenant"), pricing=prices, thresholds=()
        )

    return {
        "off": {"observer": NoObserver, "budget": NoBudget, "pricing": NoPricing},
        "pricing": {"observer": NoObserver, "budget": NoBudget, "pricing": lambda: prices},
        "metrics": {
            "observer": MetricsObserver,
            "budget": NoBudget,
            "pricing": lambda: prices,
        },
        "budget": {"observer": NoObserver, "budget": budget, "pricing": lambda: prices},
        "metrics+budget": {
            "observer": MetricsObserver,
            "budget": budget,
            "pricing": lambda: prices,
        },
        "otel": {"observer": otel_observer, "budget": NoBudget, "pricing": lambda: prices},
    }


def otel_observer() -> Any:
    """OTelObserver on the SDK: spans batched to a no-op exporter, metrics aggregated."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from asyncllm.telemetry import OTelObserver

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OTelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)


async def hooks_round(n: int, observer: Any, budget: Any, pricing: Any) -> float:
    """CPU seconds for ``n`` requests' worth of seam calls."""
    clock = time.monotonic
    t0 = time.process_time()
    for i in range(n):
        rid = f"r{i}"
        info = RequestInfo(rid, REQ, "fallback", stream=False, started=clock())
        observer.request_started(info)
        async with budget.reserve(
            REQ, provider="openai", kind="openai", model="gpt-4o-mini", local=False
        ) as reservation:
            a = AttemptInfo(rid, "openai", "openai", "gpt-4o-mini", 1, "primary", clock())
            observer.attempt_started(a)
            a.first_token_at = clock()
            observer.attempt_first_token(a)
            cost = pricing.cost(
                provider="openai", kind="openai", model="gpt-4o-mini", usage=USAGE, local=False
            )
            reservation.settle(cost)
        a.finished = clock()
        a.usage, a.cost_usd, a.outcome = USAGE, cost, "success"
        resp = Response("ok", "stop", USAGE, "openai", "gpt-4o-mini", cost_usd=cost)
        observer.attempt_finished(a, resp, None)
        observer.request_finished(info, resp, None)
    return time.process_time() - t0


def client_supported() -> bool:
    from asyncllm import Client

    params = inspect.signature(Client.__init__).parameters
    return all(p in params for p in ("observers", "budget", "pricing"))


async def client_round(n: int, observer: Any, budget: Any, pricing: Any) -> float:
    """CPU seconds for ``n`` sequential ``Client.complete`` calls on a FakeProvider."""
    from asyncllm import Client
    from asyncllm.testing import FakeProvider, FakeReply

    fake = FakeProvider("openai", kind="openai", model="gpt-4o-mini",
                        replies=[FakeReply(tokens=("ok",), usage=USAGE)])  # fmt: skip
    client: Any = Client(fake, observers=[observer], budget=budget, pricing=pricing, log=False)
    async with client:
        await client.complete(REQ)  # warm-up: first-call set-up is not per-request cost
        t0 = time.process_time()
        for _ in range(n):
            await client.complete(REQ)
        return time.process_time() - t0


def measure(
    round_fn: Callable[..., Any], n: int, rounds: int, cfgs: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """Best-of-``rounds`` µs/request per configuration; configurations interleaved."""
    best = {name: float("inf") for name in cfgs}
    for _ in range(rounds):
        for name, c in cfgs.items():
            secs = anyio.run(round_fn, n, c["observer"](), c["budget"](), c["pricing"]())
            best[name] = min(best[name], secs / n * 1e6)
    return best


def pricing_bench(prices: Prices, n: int) -> dict[str, float]:
    import genai_prices

    gu = genai_prices.Usage(input_tokens=420, output_tokens=180, cache_read_tokens=128)
    t0 = time.process_time()
    for _ in range(n):
        prices.cost(provider="openai", kind="openai", model="gpt-4o-mini", usage=USAGE, local=False)
    ours = (time.process_time() - t0) / n * 1e6
    m = max(1, n // 50)
    t0 = time.process_time()
    for _ in range(m):
        genai_prices.calc_price(gu, "gpt-4o-mini", provider_id="openai")
    theirs = (time.process_time() - t0) / m * 1e6
    return {"prices_cost_us": ours, "genai_prices_calc_us": theirs, "speedup": theirs / ours}


def with_overheads(best: dict[str, float]) -> dict[str, Any]:
    base = best["off"]
    return {
        "us_per_request": {k: round(v, 3) for k, v in best.items()},
        "overhead_us": {k: round(v - base, 3) for k, v in best.items() if k != "off"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_telemetry.json")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    n, rounds = (2_000, 3) if args.quick else (20_000, 7)

    prices = Prices()
    prices.load()
    cfgs = configs(prices)
    result: dict[str, Any] = {
        "benchmark": "bench_telemetry",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "requests_per_round": n,
        "rounds": rounds,
        "hooks": with_overheads(measure(hooks_round, n, rounds, cfgs)),
        "pricing": pricing_bench(prices, n * 5),
    }
    if client_supported():
        cn = max(200, n // 10)
        result["client"] = with_overheads(measure(client_round, cn, rounds, cfgs))
        result["client"]["requests_per_round"] = cn
    else:
        result["client"] = "skipped: this Client does not take observers/budget/pricing yet"

    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
