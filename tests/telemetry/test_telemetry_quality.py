"""Quality signals per provider over real HTTP to the simulator: statistics(), the metrics
observer, OpenTelemetry, logs, the quality summary; and user feedback reaching them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from _otel_memory import InMemoryOtel
from structlog.testing import capture_logs

from asyncllm import AllProvidersFailed, Client, InvalidRequestError
from asyncllm.cache import ResponseCache
from asyncllm.orchestrator import RetryPolicy
from asyncllm.providers._anthropic import AnthropicProvider
from asyncllm.providers._openai import OpenAIProvider
from asyncllm.quality import format_quality_summary, not_truncated, quality_summary
from asyncllm.telemetry import LoggingObserver
from asyncllm.testing import Fault, Simulator

NO_RETRY = RetryPolicy(max_retries=0)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]


@pytest.fixture
def otel() -> Iterator[InMemoryOtel]:
    o = InMemoryOtel()
    yield o
    o.shutdown()


def points(otel: InMemoryOtel, name: str) -> list[tuple[dict[str, Any], Any]]:
    data = otel.reader.get_metrics_data()
    out: list[tuple[dict[str, Any], Any]] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
    return out


@asynccontextmanager
async def two_sims(**client_kw: Any) -> AsyncIterator[tuple[Client, Simulator, Simulator]]:
    async with Simulator(output_tokens=6) as oa, Simulator(output_tokens=6) as an:
        providers = [
            OpenAIProvider(name="oa", base_url=oa.openai_base_url, api_key="k", model="m1"),
            AnthropicProvider(name="an", base_url=an.anthropic_base_url, api_key="k", model="m2"),
        ]
        client_kw.setdefault("log", False)
        async with Client(providers, retry=NO_RETRY, **client_kw) as client:
            yield client, oa, an


async def test_every_signal_is_counted_per_provider(otel: InMemoryOtel) -> None:
    async with two_sims(observers=[otel.observer]) as (client, oa, an):
        faults = [Fault.truncated(after=2), Fault.refusal(), Fault.empty()]
        for fault in [*faults, Fault.finish("content_filter"), Fault.finish("stop")]:
            oa.inject(fault)
            await client.complete("hi")  # every one of these is accepted (no predicate)
        oa.inject(Fault.invalid_json())
        await client.complete("json please", response_format={"type": "json_object"})
        oa.inject(Fault.invalid_tool_arguments())
        await client.complete("use the tool", tools=TOOLS)
        # The Anthropic provider answers when the OpenAI one fails, with its own signals.
        oa.inject(Fault.server_error(), times=3)
        an.inject(Fault.finish("tool_calls"))
        await client.complete("use the tool", tools=TOOLS)
        an.inject(Fault.refusal())
        await client.complete("hi")
        an.inject(Fault.truncated())
        await client.complete("hi")
        metrics = client.statistics()["metrics"]
    q = metrics["providers"]["oa"]["m1"]["quality"]
    assert q["answers"] == 7
    finish = {"stop": 3, "length": 1, "tool_calls": 1, "content_filter": 1, "refusal": 1}
    assert q["finish_reasons"] == {**finish, "other": 0, "unknown": 0}
    assert q["empty"] == 1 and q["structured"] == 1 and q["invalid_json"] == 1
    assert q["tool_calls"] == 1 and q["invalid_tool_arguments"] == 1
    assert q["rates"]["refusal"] == pytest.approx(1 / 7)
    assert q["rates"]["invalid_json"] == 1.0 and q["rates"]["invalid_tool_arguments"] == 1.0
    assert q["output_tokens"]["count"] == 7 and q["output_tokens"]["min"] == 0
    a = metrics["providers"]["an"]["m2"]["quality"]
    assert a["answers"] == 3
    assert (a["finish_reasons"]["tool_calls"], a["finish_reasons"]["refusal"]) == (1, 1)
    assert a["finish_reasons"]["length"] == 1 and a["invalid_tool_arguments"] == 0
    assert metrics["providers"]["oa"]["m1"]["errors"] == {"ServerError": 3}
    # OpenTelemetry: one answer counter with the finish category and the signals.
    answers = {
        (attrs["gen_ai.provider.name"], attrs["asyncllm.answer.finish"]): p.value
        for attrs, p in points(otel, "asyncllm.client.answers")
        if not attrs["asyncllm.answer.empty"]
    }
    assert answers[("openai", "refusal")] == 1 and answers[("anthropic", "refusal")] == 1
    assert answers[("openai", "length")] == 1 and answers[("anthropic", "tool_calls")] == 1
    every = [a for a, _ in points(otel, "asyncllm.client.answers")]
    bad_json = [a for a in every if a["asyncllm.answer.invalid_json"]]
    bad_args = [a for a in every if a["asyncllm.answer.invalid_tool_arguments"]]
    assert len(bad_json) == len(bad_args) == 1
    refusals = [a for a in every if a["asyncllm.answer.finish"] == "refusal"]
    assert {a["gen_ai.response.finish_reasons"] for a in refusals} == {"content_filter"}


async def test_rejected_answer_falls_back_over_http_and_is_never_cached(
    otel: InMemoryOtel,
) -> None:
    cache = ResponseCache()
    async with two_sims(accept=not_truncated, cache=cache, observers=[otel.observer]) as (
        client,
        oa,
        an,
    ):
        oa.inject(Fault.truncated())
        first = await client.complete("hi", temperature=0)
        oa.inject(Fault.truncated(), times=2)
        an.inject(Fault.truncated(), times=2)
        with pytest.raises(AllProvidersFailed):
            await client.complete("other", temperature=0)
        with pytest.raises(AllProvidersFailed):  # not cached: asked again, rejected again
            await client.complete("other", temperature=0)
        again = await client.complete("other", temperature=0)  # faults used up: an answer
        hit = await client.complete("other", temperature=0)
        metrics = client.statistics()["metrics"]
    assert first.provider == "an" and not first.cached
    assert again.provider == "oa" and hit.cached and hit.text == again.text
    assert oa.stats.received == 4 and an.stats.received == 3
    assert metrics["providers"]["oa"]["m1"]["quality"]["rejections"] == {"truncated": 3}
    assert cache.statistics()["stored"] == 2
    spans = [
        s
        for s in otel.exporter.get_finished_spans()
        if (s.attributes or {}).get("asyncllm.answer.rejected")
    ]
    assert len(spans) == 5  # 3 on oa, 2 on an
    assert all((s.attributes or {})["gen_ai.response.finish_reasons"] == ("length",) for s in spans)
    rejections = points(otel, "asyncllm.client.answer.rejections")
    assert sum(p.value for _, p in rejections) == 5
    assert {a["asyncllm.rejection.reason"] for a, _ in rejections} == {"truncated"}


async def test_feedback_reaches_every_observer_with_latency_and_cost(
    otel: InMemoryOtel,
) -> None:
    observers = [otel.observer, LoggingObserver(structlog.get_logger())]
    with capture_logs() as logs:
        async with two_sims(observers=observers) as (client, _, _):
            response = await client.complete("hi")
            assert response.request_id is not None
            info = client.feedback(response.request_id, score=0.25, label="wrong_tone")
            client.feedback(response.request_id, label="wrong_tone", comment="sk-ant-secret123456")
            unknown = client.feedback("req_from_yesterday", score=1)
            async with client.stream("hi") as s:
                async for _ in s:
                    pass
            assert s.request_id is not None
            client.feedback(s.request_id, score=1.0)
            metrics = client.statistics()["metrics"]
    assert info.known and info.provider == "oa" and info.model == "m1"
    assert info.latency is not None and info.latency > 0
    assert info.cost_usd == response.cost_usd
    assert not unknown.known and unknown.provider is None
    fb = metrics["providers"]["oa"]["m1"]["feedback"]
    assert fb["count"] == 3 and fb["labels"] == {"wrong_tone": 2}
    assert fb["score"] == {"count": 2, "mean": 0.625, "min": 0.25, "max": 1.0}
    assert fb["latency_s"]["count"] == 3
    assert metrics["feedback"]["count"] == 4  # the unknown request too
    events = [e for e in logs if e["event"] == "llm.feedback"]
    assert len(events) == 4
    assert events[0]["score"] == 0.25 and events[0]["provider"] == "oa"
    assert "latency" in events[0] and events[0]["request_id"] == response.request_id
    assert "secret" not in events[1]["comment"]
    scores = points(otel, "asyncllm.client.feedback.score")
    assert sum(p.count for _, p in scores) == 3
    labelled = [
        a for a, _ in points(otel, "asyncllm.client.feedback") if "asyncllm.feedback.label" in a
    ]
    assert labelled and labelled[0]["asyncllm.provider"] == "oa"


async def test_feedback_arguments_are_checked() -> None:
    async with two_sims() as (client, _, _):
        for kwargs, match in (
            ({}, "give a score, a label"),
            ({"score": float("nan")}, "finite number"),
            ({"score": True}, "finite number"),
            ({"label": ""}, "label must be"),
            ({"label": "x" * 101}, "label must be"),
            ({"score": 1, "comment": 3}, "comment"),
        ):
            with pytest.raises(InvalidRequestError, match=match):
                client.feedback("req_1", **kwargs)
        with pytest.raises(InvalidRequestError, match="request_id"):
            client.feedback("", score=1)


async def test_attempt_logs_carry_the_finish_and_the_rejection() -> None:
    with capture_logs() as logs:
        async with two_sims(
            accept=not_truncated, observers=[LoggingObserver(structlog.get_logger())]
        ) as (client, oa, _):
            oa.inject(Fault.truncated())
            await client.complete("hi")
    attempts = [e for e in logs if e["event"] == "llm.attempt"]
    assert attempts[0]["finish"] == "length" and attempts[0]["rejected"].startswith("truncated")
    assert attempts[0]["outcome"] == "error" and attempts[0]["error_type"] == "AnswerRejected"
    assert attempts[0]["output_tokens"] == 3  # what the rejected answer used is logged
    assert attempts[1]["finish"] == "stop" and "rejected" not in attempts[1]


async def test_quality_summary_rows_and_table() -> None:
    async with two_sims() as (client, oa, _):
        oa.inject(Fault.truncated())
        response = await client.complete("hi")
        await client.complete("hi")
        assert response.request_id is not None
        client.feedback(response.request_id, score=-1, label="thumbs_down")
        metrics = client.statistics()["metrics"]
    (row,) = quality_summary(metrics)
    assert (row["provider"], row["model"], row["answers"], row["length"], row["stop"]) == (
        "oa",
        "m1",
        2,
        1,
        1,
    )
    assert row["feedback"] == 1 and row["score_mean"] == -1.0
    table = format_quality_summary(metrics)
    header, line = table.splitlines()
    assert header.split()[:5] == ["provider", "model", "answers", "stop", "length"]
    assert line.split()[:5] == ["oa", "m1", "2", "1", "1"]
    assert format_quality_summary({"providers": {}}) == ""
