"""What a batch reports while it runs (:class:`BatchProgress`) and when it ends
(:class:`BatchSummary`), and the per-request tally the runner's observer keeps."""

from __future__ import annotations

import contextvars
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._exceptions import BudgetExceeded

if TYPE_CHECKING:
    from .._hooks import AttemptInfo, RequestInfo
    from .._types import Response

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUDGET",
    "EXIT_DONE",
    "EXIT_ERRORS",
    "EXIT_INTERRUPTED",
    "BatchObserver",
    "BatchProgress",
    "BatchStatus",
    "BatchSummary",
]

#: Exit codes of ``asyncllm run`` (and :attr:`BatchSummary.exit_code`).
EXIT_DONE = 0  # every request has a record, none is an error
EXIT_ERRORS = 1  # every request has a record, some are errors (bad lines or failures)
EXIT_BAD_INPUT = 2  # nothing was sent: bad config, unreadable or changed input, duplicates
EXIT_BUDGET = 3  # the budget stopped the batch; the rest is pending (rerun with more)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; rerun the same command to continue

BatchStatus = Literal["done", "errors", "budget", "interrupted"]


@dataclass(slots=True)
class BatchProgress:
    """A snapshot of a running batch.

    Attributes:
        total: Requests in the input (``None`` for an async iterable input).
        done: Requests with a record, earlier runs included.
        skipped: Of those, records earlier runs wrote (not redone).
        succeeded: Answers written by this run.
        failed: Error records written by this run (failures and bad lines).
        transient: Of those, failures that may pass by themselves: the next run sends
            them again.
        resent: Error records of earlier runs removed for their requests to be sent again
            by this one (transient failures, or all with ``retry_errors``).
        pending: Requests without a record yet (``None`` when the total is unknown).
        in_flight: Requests being answered now.
        cost_usd: Spent by this batch, earlier runs included.
        budget_usd: The budget's limit, when there is one.
        input_tokens: Input tokens of this run's answers.
        output_tokens: Output tokens of this run's answers.
        cache_hits: Answers served from the cache in this run.
        hedges: Requests of this run that sent a hedge attempt.
        elapsed: Seconds since this run started.
    """

    total: int | None = None
    done: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    transient: int = 0
    resent: int = 0
    pending: int | None = None
    in_flight: int = 0
    cost_usd: float = 0.0
    budget_usd: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    hedges: int = 0
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        """Records per second written by this run."""
        return (self.succeeded + self.failed) / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(slots=True)
class BatchSummary:
    """How a run ended.

    Attributes:
        status: ``done``, ``errors``, ``budget`` or ``interrupted``.
        progress: The last progress snapshot.
        output: The output path.
        errors: Error records of this run by code.
        providers: Per provider: ``requests``, ``input_tokens``, ``output_tokens``,
            ``cost_usd`` of this run's answers.
        latency: ``p50``, ``p95``, ``p99`` seconds of this run's (uncached) answers.
        repaired_bytes: Bytes of a torn last line cut off the output at start.
        quality: Answer quality per provider and model over the client's life (rows of
            :func:`asyncllm.quality.quality_summary`: finish reasons, empty answers, invalid
            JSON or tool arguments, rejections; empty without a metrics observer).
    """

    status: BatchStatus
    progress: BatchProgress
    output: str
    errors: dict[str, int] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    repaired_bytes: int = 0
    quality: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The process exit code for this outcome (see the ``EXIT_*`` constants)."""
        return {
            "done": EXIT_DONE,
            "errors": EXIT_ERRORS,
            "budget": EXIT_BUDGET,
            "interrupted": EXIT_INTERRUPTED,
        }[self.status]

    def budget_line(self) -> str:
        """``N done, M pending, $X spent of $Y`` (``(no budget)`` without one)."""
        p = self.progress
        pending = "?" if p.pending is None else str(p.pending)
        spent = f"{p.done} done, {pending} pending, ${p.cost_usd:.4f} spent"
        return spent + (" (no budget)" if p.budget_usd is None else f" of ${p.budget_usd:.4f}")


class Tally:
    """What one request's attempts did (filled by :class:`BatchObserver`)."""

    __slots__ = ("attempts", "cost_usd", "hedges")

    def __init__(self) -> None:
        self.attempts = 0
        self.hedges = 0
        self.cost_usd = 0.0

    @property
    def hedged(self) -> bool:
        """Whether a hedge attempt was sent."""
        return self.hedges > 0


CURRENT: contextvars.ContextVar[Tally | None] = contextvars.ContextVar(
    "asyncllm_batch_tally", default=None
)


class BatchObserver:
    """Counts each batch request's attempts, hedges and the cost of *every* attempt (the
    losing legs of a hedge or race included), so a record says what its answer cost.

    :func:`~asyncllm.batch.build_client` adds one; add one to your own client's
    ``observers=`` when you pass a client to :func:`~asyncllm.batch.run_batch`.
    """

    def request_started(self, info: RequestInfo) -> None:
        """Nothing to do."""

    def attempt_started(self, info: AttemptInfo) -> None:
        """Count the attempt (and note a hedge)."""
        tally = CURRENT.get()
        if tally is not None:
            tally.attempts += 1
            if info.role == "hedge":
                tally.hedges += 1

    def attempt_first_token(self, info: AttemptInfo) -> None:
        """Nothing to do."""

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Add the attempt's cost; an attempt the budget refused was never sent: uncounted."""
        tally = CURRENT.get()
        if tally is None:
            return
        if isinstance(error, BudgetExceeded):
            tally.attempts -= 1
            if info.role == "hedge":
                tally.hedges -= 1
        elif info.cost_usd:
            tally.cost_usd += info.cost_usd

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Nothing to do."""


class Stats:
    """Running totals of one run (the runner's, turned into progress and a summary)."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.errors: Counter[str] = Counter()
        self.providers: dict[str, dict[str, Any]] = {}

    def answer(self, response: Response, cost: float) -> None:
        if not response.cached:
            self.latencies.append(response.latency)
        p = self.providers.get(response.provider)
        if p is None:
            p = self.providers[response.provider] = {
                "requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
            }
        p["requests"] += 1
        if response.usage is not None:  # None: the server reported no usage
            p["input_tokens"] += response.usage.input_tokens
            p["output_tokens"] += response.usage.output_tokens
        p["cost_usd"] += cost

    def quantiles(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        ordered = sorted(self.latencies)
        n = len(ordered)
        return {
            f"p{q}": ordered[min(n - 1, max(0, round(q / 100 * n + 0.5) - 1))] for q in (50, 95, 99)
        }
