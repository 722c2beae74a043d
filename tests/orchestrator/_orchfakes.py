"""Small recording fakes of the ``asyncllm.abc`` protocols, for the orchestrator's tests."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import anyio

from asyncllm import ChatRequest, RateLimitInfo, Response, Usage
from asyncllm.abc import AttemptInfo, RequestInfo


class _Permit:
    def __init__(self, limiter: RecordingLimiter, tokens: int, model: str) -> None:
        self.limiter = limiter
        self.tokens = tokens
        self.model = model
        self.settled: list[Usage | None] = []
        self.entered = False

    def settle(self, usage: Usage | None) -> None:
        self.settled.append(usage)
        self.limiter.events.append(("settle", usage))

    async def __aenter__(self) -> _Permit:
        lim = self.limiter
        lim.events.append(("acquire", self.tokens, self.model))
        if lim.semaphore is not None:
            await lim.semaphore.acquire()
        self.entered = True
        lim.in_use += 1
        lim.permits.append(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        lim = self.limiter
        lim.in_use -= 1
        lim.events.append(("release",))
        if lim.semaphore is not None:
            lim.semaphore.release()


class RecordingLimiter:
    """Records every call; optionally a concurrency limit (an anyio semaphore)."""

    def __init__(self, concurrency: int | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.semaphore = anyio.Semaphore(concurrency) if concurrency else None
        self.in_use = 0
        self.permits: list[_Permit] = []

    def acquire(self, tokens: int, *, model: str) -> _Permit:
        return _Permit(self, tokens, model)

    def observe(self, info: RateLimitInfo, *, model: str) -> None:
        self.events.append(("observe", info, model))

    def pause(self, seconds: float, *, model: str) -> None:
        self.events.append(("pause", seconds, model))

    def statistics(self) -> dict[str, Any]:
        return {"in_use": self.in_use}


class _Reservation:
    def __init__(self, budget: RecordingBudget) -> None:
        self.budget = budget
        self.settled: list[float | None] = []

    def settle(self, cost_usd: float | None) -> None:
        self.settled.append(cost_usd)
        self.budget.events.append(("settle", cost_usd))

    async def __aenter__(self) -> _Reservation:
        self.budget.open += 1
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.budget.open -= 1
        self.budget.events.append(("release",))


class RecordingBudget:
    def __init__(self, refuse: Exception | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.open = 0
        self.refuse = refuse
        self.reservations: list[_Reservation] = []

    def reserve(
        self, request: ChatRequest, *, provider: str, kind: str, model: str, local: bool
    ) -> _Reservation:
        self.events.append(("reserve", provider, kind, model, local))
        if self.refuse is not None:
            raise self.refuse
        r = _Reservation(self)
        self.reservations.append(r)
        return r


class FixedPricing:
    def __init__(self, per_token: float = 0.001) -> None:
        self.per_token = per_token
        self.calls: list[dict[str, Any]] = []

    def cost(
        self, *, provider: str, kind: str, model: str, usage: Usage, local: bool
    ) -> float | None:
        self.calls.append(
            {"provider": provider, "kind": kind, "model": model, "usage": usage, "local": local}
        )
        return usage.total_tokens * self.per_token


class RecordingObserver:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []

    def request_started(self, info: RequestInfo) -> None:
        self.events.append(("request_started", info.request_id, None))

    def attempt_started(self, info: AttemptInfo) -> None:
        self.events.append(("attempt_started", (info.provider, info.role, info.attempt), None))

    def attempt_first_token(self, info: AttemptInfo) -> None:
        self.events.append(("attempt_first_token", info.provider, None))

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        self.events.append(("attempt_finished", (info.provider, info.role, info.outcome), error))

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        self.events.append(("request_finished", info.attempts, error))

    def outcomes(self) -> list[tuple[str, str, str]]:
        return [e[1] for e in self.events if e[0] == "attempt_finished"]


def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than the current one (should be empty after any call)."""
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current}
