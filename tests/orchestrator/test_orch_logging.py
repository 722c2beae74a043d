"""Structured events through structlog: ``llm.attempt`` and ``llm.request``."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from asyncllm import Client, ServerError
from asyncllm.telemetry import CompositeObserver, LoggingObserver
from asyncllm.testing import FakeProvider

pytestmark = pytest.mark.looptime


class Recorder:
    """Stands in for a structlog logger."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str) -> Any:
        def emit(event: str, **kw: Any) -> None:
            self.events.append((level, event, kw))

        return emit

    def __getattr__(self, level: str) -> Any:
        return self._log(level)


async def test_events_for_attempts_and_requests() -> None:
    rec = Recorder()
    a = FakeProvider("a", replies=[ServerError("down sk-abcdefghijklmnop")])
    b = FakeProvider("b")
    async with Client([a, b], log=False, observers=[LoggingObserver(rec)]) as client:
        response = await client.complete("hi")
    (lvl1, ev1, failed), (lvl2, ev2, ok), (lvl3, ev3, req) = rec.events
    assert (lvl1, ev1) == ("info", "llm.attempt")
    assert failed["provider"] == "a" and failed["role"] == "primary"
    assert failed["outcome"] == "error" and failed["error_type"] == "ServerError"
    assert "sk-abcdefghijklmnop" not in failed["error"]  # no secrets in logs
    assert (lvl2, ev2) == ("debug", "llm.attempt")
    assert ok["role"] == "fallback" and ok["attempt"] == 2 and ok["outcome"] == "success"
    assert ok["input_tokens"] > 0 and "latency" in ok
    assert (lvl3, ev3) == ("info", "llm.request")
    assert req["request_id"] == response.request_id == ok["request_id"]
    assert req["attempts"] == 2 and req["provider"] == "b" and req["strategy"] == "fallback"
    assert req["latency"] >= ok["latency"]


async def test_silent_until_structlog_is_configured(capsys: pytest.CaptureFixture[str]) -> None:
    assert not structlog.is_configured()
    async with Client(FakeProvider("a")) as client:  # the default LoggingObserver
        await client.complete("hi")
    assert capsys.readouterr().out == ""


async def test_composite_observer_calls_every_observer() -> None:
    r1, r2 = Recorder(), Recorder()
    both = CompositeObserver([LoggingObserver(r1), LoggingObserver(r2)])
    async with Client(FakeProvider("a"), log=False, observers=[both]) as client:
        await client.complete("hi")
    assert [e[1] for e in r1.events] == [e[1] for e in r2.events] == ["llm.attempt", "llm.request"]
