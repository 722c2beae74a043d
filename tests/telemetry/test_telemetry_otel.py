"""OTelObserver: GenAI semconv spans and metrics, pinned with the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from _otel_memory import InMemoryOtel
from _sim_orchestrator import Sim
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from asyncllm import AllProvidersFailed, Response, ServerError, Usage
from asyncllm.telemetry import OTelObserver


class Otel(InMemoryOtel):
    def spans(self) -> dict[str, ReadableSpan]:
        """Finished spans by a readable key: 'request' or 'attempt <n>'."""
        out = {}
        for s in self.exporter.get_finished_spans():
            attrs = s.attributes or {}
            n = attrs.get("asyncllm.attempt.number")
            out["request" if n is None else f"attempt {n}"] = s
        return out

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        if data is None:  # nothing recorded at all
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    yield o
    o.shutdown()


def hedged(otel: Otel) -> Sim:
    sim = Sim([otel.observer])
    r = sim.request(max_tokens=64, temperature=0.2)
    primary = sim.attempt(r)
    sim.clock.t += 0.5
    hedge = sim.attempt(r, role="hedge")
    sim.clock.t += 0.1
    sim.first_token(hedge)
    sim.clock.t += 0.2
    resp = sim.finish(hedge, "success", usage=Usage(20, 30, cache_read_tokens=8), cost=0.002)
    sim.finish(primary, "lost", usage=Usage(20, 0))
    sim.done(r, resp)
    return sim


def test_hedged_request_spans_follow_genai_semconv(otel: Otel) -> None:
    hedged(otel)
    spans = otel.spans()
    assert set(spans) == {"request", "attempt 1", "attempt 2"}
    req, primary, hedge = spans["request"], spans["attempt 1"], spans["attempt 2"]
    # One span per logical request, a child client span per attempt.
    assert req.name == "chat gpt-4o-mini" and req.kind == SpanKind.INTERNAL
    assert req.parent is None
    for child in (primary, hedge):
        assert child.parent is not None
        assert child.parent.span_id == req.context.span_id
        assert child.context.trace_id == req.context.trace_id
        assert child.kind == SpanKind.CLIENT and child.name == "chat gpt-4o-mini"
    assert dict(req.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.stream": True,
        "asyncllm.request_id": "req-1",
        "asyncllm.strategy": "fallback",
        "asyncllm.attempts": 2,
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 20,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 8,
        "asyncllm.cost_usd": 0.002,
        "asyncllm.cached": False,
        "asyncllm.response.provider": "openai",
    }
    assert req.status.status_code == StatusCode.UNSET
    assert dict(hedge.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "asyncllm.provider": "openai",
        "asyncllm.attempt.number": 2,
        "asyncllm.attempt.role": "hedge",
        "asyncllm.attempt.outcome": "success",
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 20,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 8,
        "asyncllm.cost_usd": 0.002,
    }
    assert [e.name for e in hedge.events] == ["asyncllm.first_token"]
    # The loser: marked cancelled, status left UNSET (not a provider failure).
    pa = dict(primary.attributes or {})
    assert pa["asyncllm.attempt.role"] == "primary"
    assert pa["asyncllm.attempt.outcome"] == "lost"
    assert pa["error.type"] == "cancelled"
    assert pa["gen_ai.usage.input_tokens"] == 20
    assert primary.status.status_code == StatusCode.UNSET
    assert "error.type" not in (hedge.attributes or {})


def test_hedged_request_metrics(otel: Otel) -> None:
    hedged(otel)
    durations = otel.points("gen_ai.client.operation.duration")
    by_role = {a["asyncllm.attempt.role"]: (a, p) for a, p in durations}
    attrs, point = by_role["hedge"]
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "asyncllm.attempt.role": "hedge",
    }
    assert point.count == 1 and point.sum == pytest.approx(0.3)
    assert list(point.explicit_bounds)[:3] == [0.01, 0.02, 0.04]  # semconv advisory buckets
    lost_attrs, lost_point = by_role["primary"]
    assert lost_attrs["error.type"] == "cancelled" and lost_point.sum == pytest.approx(0.8)
    tokens = {
        (a["gen_ai.token.type"], a["asyncllm.attempt.role"]): p.sum
        for a, p in otel.points("gen_ai.client.token.usage")
    }
    assert tokens == {
        ("input", "hedge"): 20,
        ("output", "hedge"): 30,
        ("input", "primary"): 20,
        ("output", "primary"): 0,
    }
    ttfc = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert len(ttfc) == 1 and ttfc[0][1].sum == pytest.approx(0.1)
    cost = otel.points("asyncllm.client.cost")
    assert [p.value for _, p in cost] == [pytest.approx(0.002)]


def test_raced_request_loser_span_is_cancelled(otel: Otel) -> None:
    sim = Sim([otel.observer])
    r = sim.request(strategy="race")
    a = sim.attempt(r, role="race")
    b = sim.attempt(r, provider="claude", kind="anthropic", model="claude-3-5-haiku", role="race")
    sim.clock.t += 0.4
    resp = sim.finish(b, "success", usage=Usage(5, 5))
    sim.finish(a, "lost")
    sim.done(r, resp)
    spans = otel.spans()
    winner, loser = spans["attempt 2"], spans["attempt 1"]
    assert (winner.attributes or {})["gen_ai.provider.name"] == "anthropic"
    assert (winner.attributes or {})["asyncllm.provider"] == "claude"
    assert (loser.attributes or {})["error.type"] == "cancelled"
    assert loser.status.status_code == StatusCode.UNSET
    assert (spans["request"].attributes or {})["asyncllm.response.provider"] == "claude"


def test_errors_set_error_status_on_attempt_and_failed_request(otel: Otel) -> None:
    sim = Sim([otel.observer])
    r = sim.request()
    a = sim.attempt(r)
    err = ServerError("upstream said sk-abcdefghijklmnop", provider="openai", status_code=500)
    sim.finish(a, "error", error=err)
    b = sim.attempt(r, role="fallback", provider="anthropic", model="claude-3-5-haiku")
    sim.finish(b, "cancelled", error=asyncio.CancelledError())
    sim.done(r, None, AllProvidersFailed("all failed", [err]))
    spans = otel.spans()
    attempt = spans["attempt 1"]
    assert attempt.status.status_code == StatusCode.ERROR
    assert "sk-abcdefghijklmnop" not in (attempt.status.description or "")
    assert (attempt.attributes or {})["error.type"] == "ServerError"
    cancelled = spans["attempt 2"]
    assert (cancelled.attributes or {})["error.type"] == "cancelled"
    assert cancelled.status.status_code == StatusCode.UNSET
    req = spans["request"]
    assert req.status.status_code == StatusCode.ERROR
    assert (req.attributes or {})["error.type"] == "AllProvidersFailed"
    errs = {a["error.type"] for a, _ in otel.points("gen_ai.client.operation.duration")}
    assert errs == {"ServerError", "cancelled"}


def test_request_span_parent_is_the_callers_span(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    sim = Sim([otel.observer])
    with tracer.start_as_current_span("handler") as handler:
        r = sim.request()
    # Attempts run later, in other tasks, without the handler's context attached.
    a = sim.attempt(r)
    resp = sim.finish(a, "success", usage=Usage(1, 1))
    sim.done(r, resp)
    spans = otel.spans()
    assert spans["request"].parent is not None
    assert spans["request"].parent.span_id == handler.get_span_context().span_id
    assert spans["attempt 1"].context.trace_id == handler.get_span_context().trace_id


def test_cancelled_request_and_tags(otel: Otel) -> None:
    tagged = OTelObserver(tracer_provider=otel.tracer_provider, record_tags=True)
    sim = Sim([tagged])
    r = sim.request(tags={"tenant": "acme"})
    sim.done(r, None, asyncio.CancelledError())
    spans = otel.spans()
    attrs = spans["request"].attributes or {}
    assert attrs["asyncllm.tag.tenant"] == "acme"
    assert attrs["error.type"] == "cancelled"
    assert spans["request"].status.status_code == StatusCode.UNSET


def test_cache_hit_is_one_request_span_without_attempts(otel: Otel) -> None:
    sim = Sim([otel.observer])
    r = sim.request(tags={"tenant": "acme"})
    cached = Response("hi", "stop", Usage(3, 4), "openai", "gpt-4o-mini", cached=True)
    sim.done(r, cached)
    spans = otel.spans()
    assert set(spans) == {"request"}
    attrs = spans["request"].attributes or {}
    assert attrs["asyncllm.cached"] is True and attrs["asyncllm.attempts"] == 0
    assert "asyncllm.tag.tenant" not in attrs  # tags are off by default
    assert otel.points("gen_ai.client.operation.duration") == []
