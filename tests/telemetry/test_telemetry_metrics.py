"""MetricsObserver: counts, hedges and races, errors, cache hits, tokens and cost."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from _sim_orchestrator import Sim
from structlog.testing import capture_logs

from asyncllm import AllProvidersFailed, ServerError, Usage
from asyncllm.cost import ModelPrice, Prices
from asyncllm.telemetry import MetricsObserver


def make() -> tuple[MetricsObserver, Sim]:
    sim = Sim([])
    m = MetricsObserver(clock=sim.clock)
    sim.observers = [m]
    return m, sim


def test_hedged_request_counts_fired_won_and_the_losers_cost() -> None:
    m, sim = make()
    r = sim.request()
    primary = sim.attempt(r)
    sim.clock.t += 0.5
    hedge = sim.attempt(r, role="hedge")
    sim.clock.t += 0.1
    sim.first_token(hedge)
    sim.clock.t += 0.2
    resp = sim.finish(hedge, "success", usage=Usage(20, 30), cost=0.002)
    sim.finish(primary, "lost", usage=Usage(20, 5), cost=0.0005)  # billed though unread
    sim.done(r, resp)
    s = m.statistics()
    series = s["providers"]["openai"]["gpt-4o-mini"]
    assert series["requests"] == 2 and series["successes"] == 1 and series["lost"] == 1
    assert series["hedges"] == {"fired": 1, "won": 1}
    assert series["latency_s"]["count"] == 1
    assert series["latency_s"]["p50"] == pytest.approx(0.3)
    assert series["ttft_s"]["p50"] == pytest.approx(0.1)
    assert series["tokens"] == {"input": 40, "output": 35, "cache_read": 0, "cache_write": 0}
    assert series["cost_usd"] == pytest.approx(0.0025)
    assert s["totals"] == {
        "attempts": 2,
        "input_tokens": 40,
        "output_tokens": 35,
        "cost_usd": pytest.approx(0.0025),
    }
    assert s["requests"]["latency_s"]["p50"] == pytest.approx(0.8)


def test_race_retry_errors_cache_hits_and_failures_pinned() -> None:
    m, sim = make()
    # 1. A race between two providers: anthropic wins, openai loses after a first token.
    r1 = sim.request(strategy="race")
    a = sim.attempt(r1, role="race")
    b = sim.attempt(r1, provider="anthropic", model="claude-3-5-haiku", role="race")
    sim.clock.t += 0.2
    sim.first_token(a)
    sim.first_token(b)
    sim.clock.t += 0.2
    resp = sim.finish(b, "success", usage=Usage(10, 10), cost=0.01)
    sim.finish(a, "lost")  # usage unknown: no tokens, no cost
    sim.done(r1, resp)
    # 2. A server error, then a retry that succeeds.
    r2 = sim.request()
    e = sim.attempt(r2)
    sim.clock.t += 0.05
    sim.finish(e, "error", error=ServerError("boom", provider="openai", status_code=500))
    retry = sim.attempt(r2, role="retry")
    sim.clock.t += 1.0
    resp = sim.finish(retry, "success", usage=Usage(100, 50), cost=0.001)
    sim.done(r2, resp)
    # 3. A cache hit: no attempt at all.
    r3 = sim.request()
    assert resp is not None
    sim.done(r3, dataclasses.replace(resp, cached=True))
    # 4. Every provider fails; a fallback attempt is cancelled by the deadline.
    r4 = sim.request()
    f1 = sim.attempt(r4)
    err = ServerError("down", provider="openai", status_code=503)
    sim.finish(f1, "error", error=err)
    f2 = sim.attempt(r4, provider="anthropic", model="claude-3-5-haiku", role="fallback")
    sim.finish(f2, "cancelled", error=asyncio.CancelledError())
    sim.done(r4, None, AllProvidersFailed("all failed", [err]))

    s = m.statistics()
    assert s["requests"] == {
        "started": 4,
        "succeeded": 3,
        "failed": 1,
        "cancelled": 0,
        "abandoned": 0,
        "in_flight": 0,
        "errors": {"AllProvidersFailed": 1},
        "cache_hits": 1,
        "strategies": {"race": 1, "fallback": 3},
        "latency_s": s["requests"]["latency_s"],
    }
    oa = s["providers"]["openai"]["gpt-4o-mini"]
    assert {k: oa[k] for k in ("requests", "successes", "errors", "cancelled", "lost")} == {
        "requests": 4,
        "successes": 1,
        "errors": {"ServerError": 2},
        "cancelled": 0,
        "lost": 1,
    }
    assert oa["retries"] == 1 and oa["races"] == {"started": 1, "won": 0}
    assert oa["cache_hits"] == 0 and oa["in_flight"] == 0
    assert oa["latency_s"]["p50"] == pytest.approx(1.0)
    assert oa["ttft_s"]["count"] == 1
    # The cache hit is counted under the provider/model the cached answer came from.
    assert s["providers"]["openai"]["gpt-4o-mini-2024"]["cache_hits"] == 1
    an = s["providers"]["anthropic"]["claude-3-5-haiku"]
    assert an["races"] == {"started": 1, "won": 1} and an["fallbacks"] == 1
    assert an["cancelled"] == 1 and an["errors"] == {}
    assert an["cost_usd"] == pytest.approx(0.01)
    assert s["totals"]["cost_usd"] == pytest.approx(0.011)


def test_missing_cost_is_priced_from_usage_or_counted_unknown() -> None:
    prices = Prices({("openai", "m"): ModelPrice(1_000_000, 1_000_000)})  # $1 a token
    sim = Sim([])
    priced = MetricsObserver(pricing=prices)
    plain = MetricsObserver()
    sim.observers = [priced, plain]
    r = sim.request()
    a = sim.attempt(r, model="m")
    resp = sim.finish(a, "success", usage=Usage(2, 3))
    sim.done(r, resp)
    assert priced.statistics()["providers"]["openai"]["m"]["cost_usd"] == 5.0
    assert plain.statistics()["providers"]["openai"]["m"]["cost_unknown"] == 1


def test_observer_bug_is_logged_not_raised() -> None:
    m, sim = make()
    r = sim.request()
    a = sim.attempt(r)
    a.finished = sim.clock.t
    a.outcome = "success"
    a.usage = object()  # type: ignore[assignment]  # a broken orchestrator
    with capture_logs() as logs:
        m.attempt_finished(a, None, None)
    assert [e["event"] for e in logs] == ["metrics.observer_failed"]


def test_reset_forgets_everything() -> None:
    m, sim = make()
    r = sim.request()
    sim.done(r, None, RuntimeError("x"))
    m.reset()
    assert m.statistics()["requests"]["started"] == 0 and m.statistics()["providers"] == {}


def test_cancelled_and_abandoned_requests_are_not_failures() -> None:
    m, sim = make()
    r1 = sim.request()
    sim.done(r1, None, asyncio.CancelledError())
    r2 = sim.request()
    r2.extra["outcome"] = "abandoned"  # what the orchestrator says of a stream left early
    sim.done(r2, None, None)
    req = m.statistics()["requests"]
    assert (req["failed"], req["cancelled"], req["abandoned"], req["in_flight"]) == (0, 1, 1, 0)
    assert req["errors"] == {}
