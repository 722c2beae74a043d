"""The seams between the orchestrator and the layers around each attempt.

Users import these from :mod:`asyncllm.abc`, the public face of this module.

The orchestrator runs every attempt (primary, retry, hedge, fallback, race) through the same
per-provider pipeline::

    breaker check -> budget.reserve(worst case) -> limiter.acquire(tokens, model=...)
        -> provider.stream(...) -> pricing.cost(usage)
        -> permit.settle(usage) / reservation.settle(cost)
    (observer callbacks at each step)

These protocols are what the orchestrator knows of limits, budgets and telemetry; the
``limits/``, ``telemetry/`` and budget modules implement them, and the no-op versions here
are the defaults. Releases happen in ``__aexit__`` of the context managers, in the task
that acquired, shielded from cancellation.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from ._types import ChatRequest, Chunk, RateLimitInfo, Response, Usage

__all__ = [
    "FINISH_CATEGORIES",
    "AttemptInfo",
    "AttemptRole",
    "Budget",
    "Cache",
    "CacheMode",
    "FeedbackInfo",
    "FinishCategory",
    "Limiter",
    "NoBudget",
    "NoLimiter",
    "NoObserver",
    "NoPricing",
    "Observer",
    "Permit",
    "Pricing",
    "Quality",
    "RequestInfo",
    "Reservation",
    "ResponseCache",
    "Route",
]

AttemptRole: TypeAlias = Literal["primary", "retry", "hedge", "fallback", "race"]

FinishCategory: TypeAlias = Literal[
    "stop", "length", "tool_calls", "content_filter", "refusal", "other", "unknown"
]
#: Every finish category, in the order reports list them.
FINISH_CATEGORIES: tuple[FinishCategory, ...] = (
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "refusal",
    "other",
    "unknown",
)


@dataclass(slots=True)
class Quality:
    """The quality signals of one answer.

    Attributes:
        finish: The finish category (see the module docstring).
        empty: No text (or only whitespace) and no tool call.
        structured: The request asked for JSON output (``response_format``).
        invalid_json: Structured output was asked for and the text is not valid JSON, or
            does not match the requested schema.
        tool_calls: Tool calls in the answer.
        invalid_tool_arguments: How many of them have arguments that are not a JSON object
            matching their tool's parameter schema (or name a tool the request did not
            offer).
        output_tokens: Output tokens the provider reported (``None`` when it reported no
            usage: the answer is then left out of the output-token distribution).
        rejected: The acceptance predicate's reason when it rejected the answer.
    """

    finish: FinishCategory
    empty: bool
    structured: bool = False
    invalid_json: bool = False
    tool_calls: int = 0
    invalid_tool_arguments: int = 0
    output_tokens: int | None = 0
    rejected: str | None = None


class Permit(Protocol):
    """A limiter slot held for one attempt."""

    def settle(self, usage: Usage | None) -> None:
        """Record the real usage; the unused part of the reservation is given back on exit.

        ``None`` means the usage is unknown (for example a cancelled stream): the
        reservation is kept as spent.
        """
        ...


class Limiter(Protocol):
    """Per-provider rate limiter (requests, tokens, concurrency)."""

    def acquire(self, tokens: int, *, model: str) -> AbstractAsyncContextManager[Permit]:
        """Wait (FIFO) for a request slot, ``tokens`` of token budget and a concurrency slot.

        ``model`` lets a limiter keep separate buckets per model where the provider limits
        per model.

        Cancelled while waiting: takes nothing. Leaving the context gives back the
        concurrency slot and unused tokens; the orchestrator leaves it shielded from
        cancellation. A context manager whose class sets ``sync_exit = True`` declares
        that its ``__aexit__`` never suspends (nothing can interrupt it), which spares the
        shield scope; leave it unset when leaving may wait (a network call). Only the class
        that defines the ``__aexit__`` in use can declare it: a subclass overriding
        ``__aexit__`` is shielded unless it sets the flag again.
        """
        ...

    def observe(self, info: RateLimitInfo, *, model: str) -> None:
        """Correct the limiter's state from the provider's rate-limit headers."""
        ...

    def pause(self, seconds: float, *, model: str) -> None:
        """A 429 said to wait: hold every waiter for ``seconds``."""
        ...

    def statistics(self) -> dict[str, Any]:
        """Waiters, time spent waiting, current levels, 429s seen."""
        ...


class Reservation(Protocol):
    """A budget reservation for one attempt."""

    def settle(self, cost_usd: float | None) -> None:
        """Record the real cost (``None``: unknown, keep the worst case)."""
        ...


class Budget(Protocol):
    """Spend limits, enforced before each attempt."""

    def reserve(
        self, request: ChatRequest, *, provider: str, kind: str, model: str, local: bool
    ) -> AbstractAsyncContextManager[Reservation]:
        """Reserve the attempt's worst-case cost or raise ``BudgetExceeded``.

        Leaving the context books what was settled; the orchestrator leaves it shielded
        from cancellation (``sync_exit = True`` on the context manager's class: see
        :meth:`Limiter.acquire`).
        """
        ...


class Pricing(Protocol):
    """Prices responses. ``None`` means the price is unknown."""

    def cost(
        self, *, provider: str, kind: str, model: str, usage: Usage, local: bool
    ) -> float | None: ...


class NoPricing:
    """Knows no prices."""

    def cost(
        self, *, provider: str, kind: str, model: str, usage: Usage, local: bool
    ) -> float | None:
        return None


CacheMode: TypeAlias = Literal["use", "bypass", "refresh"]

#: The providers a logical request may be answered by: (provider name, kind, model) in
#: strategy order. Part of the cache key, so a different route never shares an entry.
Route: TypeAlias = "tuple[tuple[str, str, str], ...]"


class Cache(Protocol):
    """The cache in front of the orchestrator (a hit touches no limiter, budget or provider)."""

    async def complete(
        self,
        request: ChatRequest,
        route: Route,
        call: Callable[[], Awaitable[Response]],
        *,
        mode: CacheMode = "use",
        ttl: float | None = None,
    ) -> Response:
        """Answer from the cache, join an identical in-flight call, or run ``call``."""
        ...

    def stream(
        self,
        request: ChatRequest,
        route: Route,
        open_stream: Callable[[], AbstractAsyncContextManager[AsyncIterator[Chunk]]],
        *,
        mode: CacheMode = "use",
        ttl: float | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[Chunk]]:
        """Replay a cached answer as chunks, or stream through ``open_stream`` and store a
        cleanly finished stream."""
        ...

    def statistics(self) -> dict[str, Any]: ...


#: The name this protocol had before ``asyncllm.abc``; the concrete cache is
#: :class:`asyncllm.ResponseCache`.
ResponseCache = Cache


@dataclass(slots=True)
class RequestInfo:
    """One logical request as the observer sees it, from its arrival at the client (before
    the cache) to its end: every request, answered by the cache or upstream, is reported
    once, ``request_started`` then ``request_finished``.

    Attributes:
        request_id: The request's id (bound for log calls while it runs; the id of its
            attempts and of its ``Response``).
        request: The request as the caller made it.
        strategy: The strategy it was made with (``"fallback"``, ``"race"``, ``"hedge"``).
        stream: ``client.stream`` rather than ``client.complete``.
        started: When it arrived (the client's clock).
        attempts: Attempts made for it, set when it finishes (0 when the cache answered).
        cached: Set when it finishes: it succeeded with the cache's answer (a stored
            answer, or the answer of an identical request in flight it shared). A hit
            left before its end, or a shared call that failed, is not marked.
        extra: ``latency`` (seconds, end to end) and, for a stream left before its end,
            ``outcome="abandoned"``.
    """

    request_id: str
    request: ChatRequest
    strategy: str
    stream: bool
    started: float
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


@dataclass(slots=True)
class AttemptInfo:
    """One attempt on one provider."""

    request_id: str
    provider: str
    kind: str
    model: str
    attempt: int
    role: AttemptRole
    started: float
    first_token_at: float | None = None
    finished: float | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    outcome: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The answer's quality signals, when the attempt got an answer (accepted or rejected
    #: by the acceptance predicate); ``None`` otherwise.
    quality: Quality | None = None


@dataclass(slots=True, frozen=True)
class FeedbackInfo:
    """A score or label attached to a finished request (``client.feedback(...)``).

    ``provider``, ``model``, ``latency``, ``cost_usd`` and ``cached`` are those of the
    request, when the client still remembers it (its most recent requests); ``None``
    otherwise (an id from another process, or too old).
    """

    request_id: str
    score: float | None
    label: str | None
    comment: str | None = None
    provider: str | None = None
    model: str | None = None
    latency: float | None = None
    cost_usd: float | None = None
    cached: bool | None = None
    at: float = 0.0

    @property
    def known(self) -> bool:
        """True when the request was found (provider, latency and cost are filled in)."""
        return self.provider is not None


class Observer(Protocol):
    """Telemetry: structured logs, metrics, traces. Every method must be cheap and not raise."""

    def request_started(self, info: RequestInfo) -> None: ...

    def attempt_started(self, info: AttemptInfo) -> None: ...

    def attempt_first_token(self, info: AttemptInfo) -> None: ...

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """``info.outcome`` is ``"success"``, ``"error"``, ``"cancelled"`` or ``"lost"``."""
        ...

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None: ...

    # Optional: ``def feedback(self, info: FeedbackInfo) -> None`` is called for
    # ``client.feedback(...)`` on observers that define it.


class _NoPermit:
    sync_exit = True  # __aexit__ never suspends: released without a shield scope
    __slots__ = ()

    def settle(self, usage: Usage | None) -> None:
        pass

    async def __aenter__(self) -> _NoPermit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


_NO_PERMIT = _NoPermit()


class NoLimiter:
    """A limiter that never waits."""

    def acquire(self, tokens: int, *, model: str) -> _NoPermit:
        return _NO_PERMIT

    def observe(self, info: RateLimitInfo, *, model: str) -> None:
        pass

    def pause(self, seconds: float, *, model: str) -> None:
        pass

    def statistics(self) -> dict[str, Any]:
        return {}


class _NoReservation:
    sync_exit = True  # __aexit__ never suspends: released without a shield scope
    __slots__ = ()

    def settle(self, cost_usd: float | None) -> None:
        pass

    async def __aenter__(self) -> _NoReservation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


_NO_RESERVATION = _NoReservation()


class NoBudget:
    """A budget that never refuses."""

    def reserve(
        self, request: ChatRequest, *, provider: str, kind: str, model: str, local: bool
    ) -> _NoReservation:
        return _NO_RESERVATION


class NoObserver:
    """An observer that records nothing."""

    def request_started(self, info: RequestInfo) -> None:
        pass

    def attempt_started(self, info: AttemptInfo) -> None:
        pass

    def attempt_first_token(self, info: AttemptInfo) -> None:
        pass

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        pass

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        pass

    def feedback(self, info: FeedbackInfo) -> None:
        pass
