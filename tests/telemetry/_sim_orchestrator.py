"""Drives observers the way the orchestrator does, with a hand-moved clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from asyncllm import ChatRequest, Message, Response, Usage
from asyncllm.abc import AttemptInfo, AttemptRole, Observer, RequestInfo


@dataclass
class Clock:
    t: float = 100.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Sim:
    observers: Sequence[Observer]
    clock: Clock = field(default_factory=Clock)
    n: int = 0

    def request(
        self, model: str | None = "gpt-4o-mini", strategy: str = "fallback", **kw: object
    ) -> RequestInfo:
        self.n += 1
        req = ChatRequest(messages=(Message("user", "hello"),), model=model, **kw)  # type: ignore[arg-type]
        info = RequestInfo(f"req-{self.n}", req, strategy, stream=True, started=self.clock.t)
        for o in self.observers:
            o.request_started(info)
        return info

    def attempt(
        self,
        r: RequestInfo,
        provider: str = "openai",
        model: str = "gpt-4o-mini",
        role: AttemptRole = "primary",
        kind: str | None = None,
    ) -> AttemptInfo:
        r.attempts += 1
        a = AttemptInfo(
            r.request_id, provider, kind or provider, model, r.attempts, role, self.clock.t
        )
        for o in self.observers:
            o.attempt_started(a)
        return a

    def first_token(self, a: AttemptInfo) -> None:
        a.first_token_at = self.clock.t
        for o in self.observers:
            o.attempt_first_token(a)

    def finish(
        self,
        a: AttemptInfo,
        outcome: str,
        *,
        usage: Usage | None = None,
        cost: float | None = None,
        error: BaseException | None = None,
    ) -> Response | None:
        a.finished = self.clock.t
        a.outcome = outcome
        a.usage = usage
        a.cost_usd = cost
        response = None
        if outcome == "success":
            response = Response(
                text="hi",
                finish_reason="stop",
                usage=usage or Usage(),
                provider=a.provider,
                model=a.model + "-2024",
                latency=a.finished - a.started,
                cost_usd=cost,
                request_id=a.request_id,
            )
        for o in self.observers:
            o.attempt_finished(a, response, error)
        return response

    def done(
        self, r: RequestInfo, response: Response | None, error: BaseException | None = None
    ) -> None:
        for o in self.observers:
            o.request_finished(r, response, error)
