"""Metrics and OpenTelemetry through the real Client, with FakeProviders on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from _otel_memory import InMemoryOtel
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from asyncllm import Client, ServerError, Usage
from asyncllm.cost import Prices
from asyncllm.orchestrator import Hedge
from asyncllm.telemetry import MetricsObserver
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime

PRICES = Prices()
USAGE = Usage(input_tokens=100, output_tokens=20)


class Recorder(InMemoryOtel):
    def __init__(self) -> None:
        super().__init__()
        self.metrics = MetricsObserver(pricing=PRICES, clock=anyio.current_time)

    def client(self, providers: list[FakeProvider], **kw: Any) -> Client:
        return Client(
            providers,  # type: ignore[arg-type]
            observers=[self.metrics, self.observer],
            pricing=PRICES,
            log=False,
            **kw,
        )

    def attempt_spans(self) -> dict[str, ReadableSpan]:
        spans = self.exporter.get_finished_spans()
        return {
            str((s.attributes or {})["asyncllm.provider"]): s
            for s in spans
            if s.kind == SpanKind.CLIENT
        }

    def request_span(self) -> ReadableSpan:
        (span,) = [s for s in self.exporter.get_finished_spans() if s.kind == SpanKind.INTERNAL]
        return span


@pytest.fixture
def rec() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.shutdown()


def fake(
    name: str, latency: float, kind: str = "openai", model: str = "gpt-4o-mini"
) -> FakeProvider:
    return FakeProvider(
        name, kind=kind, model=model, latency=latency, replies=[FakeReply(usage=USAGE)]
    )


def series(rec: Recorder, provider: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    stats: dict[str, Any] = rec.metrics.statistics()["providers"][provider][model]
    return stats


async def test_hedged_complete_loser_span_cancelled_and_hedge_counted(rec: Recorder) -> None:
    slow, fast = fake("slow", 2.0), fake("fast", 0.1)
    async with rec.client([slow, fast], strategy=Hedge(delay=0.5)) as client:
        response = await client.complete("hi")
    assert response.provider == "fast"
    expected = PRICES.cost(
        provider="fast", kind="openai", model="gpt-4o-mini", usage=USAGE, local=False
    )
    assert response.cost_usd == pytest.approx(expected)

    spans = rec.attempt_spans()
    req = rec.request_span()
    assert set(spans) == {"slow", "fast"}
    loser, winner = dict(spans["slow"].attributes or {}), dict(spans["fast"].attributes or {})
    assert loser["asyncllm.attempt.role"] == "primary"
    assert loser["asyncllm.attempt.outcome"] == "lost" and loser["error.type"] == "cancelled"
    assert spans["slow"].status.status_code == StatusCode.UNSET
    assert winner["asyncllm.attempt.role"] == "hedge"
    assert winner["asyncllm.attempt.outcome"] == "success" and "error.type" not in winner
    assert winner["gen_ai.usage.input_tokens"] == 100
    for s in spans.values():
        assert s.parent is not None and s.parent.span_id == req.context.span_id
    assert dict(req.attributes or {})["asyncllm.response.provider"] == "fast"

    fast_s, slow_s = series(rec, "fast"), series(rec, "slow")
    assert fast_s["hedges"] == {"fired": 1, "won": 1} and fast_s["successes"] == 1
    assert slow_s["lost"] == 1 and slow_s["hedges"] == {"fired": 0, "won": 0}
    assert fast_s["latency_s"]["p50"] == pytest.approx(0.1, rel=0.03)
    assert rec.metrics.statistics()["requests"]["latency_s"]["p50"] == pytest.approx(0.6, rel=0.03)
    assert rec.metrics.statistics()["totals"]["cost_usd"] == pytest.approx(expected)


async def test_streamed_hedge(rec: Recorder) -> None:
    slow, fast = fake("slow", 2.0), fake("fast", 0.1)
    client = rec.client([slow, fast], strategy=Hedge(delay=0.5))
    async with client, client.stream("hi") as stream:
        text = "".join([c.text async for c in stream])
    assert text == "Hello, world!"
    spans = rec.attempt_spans()
    assert (spans["slow"].attributes or {})["error.type"] == "cancelled"
    assert spans["slow"].status.status_code == StatusCode.UNSET
    assert [e.name for e in spans["fast"].events] == ["asyncllm.first_token"]
    assert series(rec, "fast")["hedges"] == {"fired": 1, "won": 1}
    assert series(rec, "fast")["ttft_s"]["count"] == 1


async def test_raced_complete(rec: Recorder) -> None:
    a = fake("a", 1.0)
    b = fake("b", 0.2, kind="anthropic", model="claude-3-5-haiku-latest")
    async with rec.client([a, b], strategy="race") as client:
        response = await client.complete("hi")
    assert response.provider == "b"
    spans = rec.attempt_spans()
    assert (spans["a"].attributes or {})["error.type"] == "cancelled"
    assert spans["a"].status.status_code == StatusCode.UNSET
    assert (spans["b"].attributes or {})["gen_ai.provider.name"] == "anthropic"
    assert series(rec, "a")["races"] == {"started": 1, "won": 0}
    assert series(rec, "a")["lost"] == 1
    assert series(rec, "b", "claude-3-5-haiku-latest")["races"] == {"started": 1, "won": 1}
    durations = rec.reader.get_metrics_data()
    assert durations is not None
    names = {
        m.name for rm in durations.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= names


async def test_fallback_after_error_records_error_type(rec: Recorder) -> None:
    broken = FakeProvider(
        "broken", kind="openai", model="gpt-4o-mini", replies=[ServerError("boom", status_code=500)]
    )
    ok = fake("ok", 0.1)
    async with rec.client([broken, ok]) as client:
        response = await client.complete("hi")
    assert response.provider == "ok"
    spans = rec.attempt_spans()
    assert spans["broken"].status.status_code == StatusCode.ERROR
    assert (spans["broken"].attributes or {})["error.type"] == "ServerError"
    assert rec.request_span().status.status_code == StatusCode.UNSET  # recovered: not an error
    assert series(rec, "broken")["errors"] == {"ServerError": 1}
    assert series(rec, "ok")["successes"] == 1


async def test_stream_left_early_is_abandoned_not_failed(rec: Recorder) -> None:
    client = rec.client([fake("p", 0.1)])
    async with client, client.stream("hi") as stream:
        async for _ in stream:
            break
    req_span = rec.request_span()
    assert (req_span.attributes or {})["asyncllm.outcome"] == "abandoned"
    assert req_span.status.status_code == StatusCode.UNSET
    requests = rec.metrics.statistics()["requests"]
    assert requests["abandoned"] == 1 and requests["failed"] == 0
