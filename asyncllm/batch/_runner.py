"""``run_batch``: an input of requests in, exactly one output record per request out.

The run, in order:

1. pre-pass over an input file (count, fingerprint, duplicate ids refused naming both lines);
2. the output is checked against the input's fingerprint, its torn tail repaired, and the
   ids it already holds read (they are skipped: resuming never redoes or rewrites them);
3. the client is built (from a config) with a budget lowered by what earlier runs spent;
4. the lines stream through the same fan-out engine as ``client.map`` (``concurrency`` in
   flight); each finished request is appended to the output at once;
5. it ends when the input is exhausted, when the budget refuses (no new request starts;
   refused requests get no record and stay pending), or when ``stop`` is set (no new
   request starts; in-flight ones get ``grace_period`` seconds, then are cancelled and get
   no record). The output is fsynced and closed on every path.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .._client import Client
from .._exceptions import ConfigurationError
from .._types import Response
from ..orchestrator import FanOut
from ..quality import quality_summary
from ._config import DEFAULT_CONCURRENCY, RunConfig, build_budget, build_client, load_config
from ._input import BatchItem, LineError, ModelRule, parse_line
from ._output import Appender, prepare_output
from ._progress import CURRENT, BatchObserver, BatchProgress, BatchSummary, Stats, Tally
from ._record import (
    error_code,
    error_record,
    is_budget_refusal,
    is_budget_unavailable,
    is_transient,
    line_error_record,
    success_record,
)
from ._scan import scan_input

__all__ = ["BatchOptions", "run_batch"]

InputLike = str | Path | AsyncIterable[Any] | Iterable[Any]


@dataclass(slots=True, frozen=True)
class BatchOptions:
    """How to run a batch. ``None`` takes the config's value (or its default).

    Attributes:
        concurrency: Requests in flight.
        ordered: Write records in input order (default: completion order).
        retry_errors: Run again the requests whose record is an error (the error records
            are removed first, atomically; one record per custom_id remains).
        retry_transient: Run again the requests whose record is a transient failure's
            (the provider was unreachable, timing out, rate limiting, overloaded or
            failing, or the deadline passed: ``asyncllm.transient`` in the record); on by
            default, so a batch hit by an outage finishes by being run again.
        restart: Start over: the existing output is moved aside (never deleted).
        grace_period: Seconds in-flight requests get to finish after ``stop``.
        fsync_interval: Seconds between fsyncs of the output.
        rule: What a line's ``model`` may do (default: the config's ``model_policy``).
        progress_interval: Least seconds between two progress callbacks.
    """

    concurrency: int | None = None
    ordered: bool | None = None
    retry_errors: bool = False
    retry_transient: bool = True
    restart: bool = False
    grace_period: float | None = None
    fsync_interval: float | None = None
    rule: ModelRule | None = None
    progress_interval: float = 0.2


class _Refused(Exception):
    """Not admitted: the batch is stopping."""


class _BadLine(Exception):
    def __init__(self, error: LineError) -> None:
        super().__init__(error.message)
        self.error = error


class _Job:
    __slots__ = ("item", "tally")

    def __init__(self, item: BatchItem | LineError) -> None:
        self.item = item
        self.tally = Tally()


async def _numbered(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[tuple[int, Any]]:
    n = 0
    if isinstance(source, AsyncIterable):
        async for x in source:
            n += 1
            yield n, x
    else:
        for x in source:
            n += 1
            yield n, x


class _Run:
    """One run's state: what is admitted, what is written, why it stops."""

    def __init__(
        self,
        client: Client,
        out: Appender,
        progress: BatchProgress,
        rule: ModelRule,
        on_progress: Callable[[BatchProgress], object] | None,
        interval: float,
    ) -> None:
        self.client = client
        self.out = out
        self.p = progress
        self.rule = rule
        self.on_progress = on_progress
        self.interval = interval
        self.stats = Stats()
        self.stopping = False
        self.budget_hit = False
        self.interrupted = False
        self.refused = 0
        self.started = time.monotonic()
        self.last_report = 0.0
        # Requests inside ``client.complete`` now; how many of them ended other than by a
        # budget refusal (releasing their reservations); requests refused meanwhile wait
        # in line for such an end, one woken per end.
        self.attempting = 0
        self.ends = 0
        self.waiting: deque[anyio.Event] = deque()

    def wake_one(self) -> None:
        """A reservation was released: the longest-waiting refused request asks again."""
        if self.waiting:
            self.waiting.popleft().set()

    def wake_all(self) -> None:
        """The run stops: every waiting request leaves (its request stays pending)."""
        while self.waiting:
            self.waiting.popleft().set()

    async def items(
        self, lines: AsyncIterator[tuple[int, Any]], done: Any, done_lines: set[int]
    ) -> AsyncIterator[_Job]:
        seen: dict[str, int] | None = {} if self.p.total is None else None
        async for lineno, raw in lines:
            if self.stopping:
                return
            parsed = parse_line(raw, lineno, rule=self.rule)
            if parsed is None:
                continue
            cid = parsed.custom_id
            if (cid in done) if cid is not None else (lineno in done_lines):
                continue
            if seen is not None and cid is not None:
                # An iterable input has no pre-pass: a repeated id is a line error here.
                first = seen.setdefault(cid, lineno)
                if first != lineno:
                    parsed = LineError(
                        lineno,
                        None,
                        "duplicate_custom_id",
                        f"line {lineno}: duplicate custom_id {cid!r} (first on line {first})",
                    )
            yield _Job(parsed)

    async def run_one(self, job: _Job) -> Response:
        item = job.item
        if isinstance(item, LineError):
            raise _BadLine(item)
        # The budget refuses a request when its worst case does not fit *now*: other
        # requests of this run may hold reservations that their real cost will mostly give
        # back. So a refused request waits in line for one of them to end (one waiter woken
        # per end) and asks again; the batch stops when a request is refused while none of
        # its own is in flight (no reservation of this run left to give back). Each new try
        # follows a real end, so this ends. A store that is down stops at once.
        while True:
            if self.stopping:
                raise _Refused
            ends = self.ends
            self.p.in_flight += 1
            self.attempting += 1
            token = CURRENT.set(job.tally)
            refused = False
            try:
                return await self.client.complete(item.request)
            except Exception as exc:
                if not is_budget_refusal(exc) or is_budget_unavailable(exc):
                    raise
                refused = True
                if self.attempting == 1:
                    # Nothing of this run holds a reservation: the budget is spent. Stop
                    # here, not when the record is read (an ordered run may hold it back
                    # behind a request that is waiting).
                    self.budget_hit = self.stopping = True
                    self.wake_all()
                    raise
            finally:
                CURRENT.reset(token)
                self.p.in_flight -= 1
                self.attempting -= 1
                if not refused:
                    self.ends += 1
                    self.wake_one()
            if self.ends == ends:  # (else something ended meanwhile: ask again at once)
                turn = anyio.Event()
                self.waiting.append(turn)
                try:
                    await turn.wait()
                finally:
                    if not turn.is_set():  # cancelled in line: leave it
                        self.waiting.remove(turn)

    def record(self, job: _Job, response: Response | None, error: Exception | None) -> None:
        item, tally, p = job.item, job.tally, self.p
        if isinstance(error, _Refused):
            self.refused += 1
            return
        if isinstance(error, _BadLine):
            self.out.add(line_error_record(error.error))
            self.stats.errors[error.error.code] += 1
            p.failed += 1
        elif error is not None:
            assert isinstance(item, BatchItem)
            p.cost_usd += tally.cost_usd
            if is_budget_refusal(error):
                # No record: the request stays pending for a rerun with a larger budget.
                self.refused += 1
                if not self.budget_hit:
                    self.budget_hit = self.stopping = True
                    self.wake_all()  # requests waiting for a reservation stop too (pending)
                return
            self.out.add(
                error_record(
                    item,
                    error,
                    cost_usd=tally.cost_usd,
                    attempts=tally.attempts,
                    hedged=tally.hedged,
                )
            )
            self.stats.errors[error_code(error)] += 1
            p.failed += 1
            p.transient += is_transient(error)
        else:
            assert isinstance(item, BatchItem) and response is not None
            # A cache hit sent nothing: it cost nothing (tally.attempts is 0 then). Without
            # a BatchObserver on a caller's client, the answering attempt's cost is all we know.
            if tally.attempts:
                cost = tally.cost_usd
            else:
                cost = 0.0 if response.cached else (response.cost_usd or 0.0)
            self.out.add(
                success_record(
                    item,
                    response,
                    cost_usd=cost,
                    attempts=tally.attempts if tally.attempts or response.cached else 1,
                    hedged=tally.hedged,
                )
            )
            self.stats.answer(response, cost)
            p.succeeded += 1
            p.cost_usd += cost
            if response.usage is not None:  # None: the server reported no usage
                p.input_tokens += response.usage.input_tokens
                p.output_tokens += response.usage.output_tokens
            p.cache_hits += response.cached
            p.hedges += tally.hedged
        p.done += 1
        if p.total is not None:
            p.pending = p.total - p.done

    def report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is None or (not force and now - self.last_report < self.interval):
            return
        self.last_report = now
        self.out.flush()  # a snapshot counts only records the kernel has
        self.p.elapsed = now - self.started
        self.on_progress(self.p)


async def _open_client(
    source: Client | RunConfig | str | Path | Mapping[str, Any],
    stack: AsyncExitStack,
    spent: float,
) -> tuple[Client, RunConfig | None]:
    if isinstance(source, Client):
        return source, None  # the caller's client: theirs to enter and close
    config = source if isinstance(source, RunConfig) else load_config(source)
    budget = build_budget(config, spent_usd=spent)
    close = getattr(budget, "aclose", None)
    if close is not None:
        stack.push_async_callback(close)  # a Redis budget's connection pool
    client = build_client(config, observers=[BatchObserver()], log=False, budget=budget)
    return await stack.enter_async_context(client), config


async def run_batch(
    client: Client | RunConfig | str | Path | Mapping[str, Any],
    input: InputLike,
    output: str | Path,
    *,
    options: BatchOptions | None = None,
    progress: Callable[[BatchProgress], object] | None = None,
    stop: anyio.Event | None = None,
    cancel: anyio.Event | None = None,
) -> BatchSummary:
    """Run a batch: every request of ``input`` answered once, one record each in ``output``.

    Args:
        client: A :class:`~asyncllm.Client` (yours: enter it with ``async with`` around
            the call, it is left open; add a :class:`BatchObserver` to its observers for
            per-record attempts, hedges and full cost), or a run config (a
            :class:`RunConfig`, a TOML path or a dict) to build one from, with its budget
            lowered by what earlier runs spent.
        input: A JSONL file (pre-checked, fingerprinted, resumable), or an iterable or
            async iterable of lines (bytes/str) or decoded objects (resumable by id).
        output: The JSONL output; appended to, never truncated.
        options: See :class:`BatchOptions`.
        progress: Called with a :class:`BatchProgress` at most every
            ``options.progress_interval`` seconds, and once at the end.
        stop: Set it to stop the batch gracefully (what Ctrl-C does in the CLI): no new
            request starts, in-flight ones get the grace period, then are cancelled.
        cancel: Set it (after ``stop``, or alone) to cancel the requests in flight at
            once instead of waiting out the grace period (what a second Ctrl-C does).
            Either way every record already answered is written and flushed, and the
            cancelled requests get none, so rerunning the same command sends them.

    Returns:
        A :class:`BatchSummary`; its ``exit_code`` is the CLI's.

    Raises:
        BatchInputError: unreadable input, duplicate ids, an output of another input.
        ConfigurationError: a bad config.
    """
    opts = options or BatchOptions()
    scan = await scan_input(input) if isinstance(input, (str, Path)) else None
    state = await prepare_output(
        output,
        fingerprint=scan.fingerprint if scan else None,
        input_name=str(input) if isinstance(input, (str, Path)) else "<stream>",
        restart=opts.restart,
        retry_errors=opts.retry_errors,
        retry_transient=opts.retry_transient,
        exact_ids=bool(scan and scan.exact_ids),
    )
    async with AsyncExitStack() as stack:
        cli, config = await _open_client(client, stack, state.spent_usd)
        settings = config.batch if config is not None else None
        concurrency = opts.concurrency or (config.concurrency if config else DEFAULT_CONCURRENCY)
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        ordered = opts.ordered if opts.ordered is not None else bool(settings and settings.ordered)
        grace = opts.grace_period or (settings.grace_period if settings else 30.0)
        fsync = opts.fsync_interval or (settings.fsync_interval if settings else 1.0)
        rule = opts.rule or (config.model_rule() if config else ModelRule())
        p = BatchProgress(
            total=scan.requests if scan else None,
            done=state.records,
            skipped=state.records,
            resent=state.resent,
            cost_usd=state.spent_usd,
            budget_usd=config.budget_usd if config else None,
        )
        if scan is not None:
            p.pending = scan.requests - state.records
        appender = Appender(output, fsync_interval=fsync)
        stack.push_async_callback(appender.aclose)
        run = _Run(cli, appender, p, rule, progress, opts.progress_interval)
        if isinstance(input, (str, Path)):
            from ._scan import read_lines

            lines: AsyncIterator[tuple[int, Any]] = read_lines(input)
        else:
            lines = _numbered(input)
        aclose = getattr(lines, "aclose", None)
        if aclose is not None:
            stack.push_async_callback(aclose)  # the file is closed on every path
        jobs = run.items(lines, state.done, state.done_lines)
        stack.push_async_callback(jobs.aclose)  # type: ignore[attr-defined]
        run.report(force=True)
        async with anyio.create_task_group() as tg:
            loop_scope = anyio.CancelScope()

            async def watch() -> None:
                assert stop is not None
                await stop.wait()
                run.stopping = run.interrupted = True
                run.wake_all()
                await anyio.sleep(grace)
                loop_scope.cancel()

            async def watch_cancel() -> None:
                assert cancel is not None
                await cancel.wait()  # a second Ctrl-C: no (more) grace
                run.stopping = run.interrupted = True
                run.wake_all()
                loop_scope.cancel()

            if stop is not None:
                tg.start_soon(watch)
            if cancel is not None:
                tg.start_soon(watch_cancel)
            with loop_scope:
                fan = FanOut(run.run_one, jobs, concurrency=concurrency, ordered=ordered)
                async with fan as results:
                    async for r in results:
                        run.record(r.request, r.response, r.error)
                        if not results.ready:
                            # Nothing else has finished: the records go out before we wait.
                            appender.flush()
                        run.report()
                        if not appender.syncing and appender.sync_due():
                            # In the background: records keep being appended meanwhile.
                            tg.start_soon(appender.sync)
            tg.cancel_scope.cancel()
        await appender.sync()
    if run.interrupted and (p.pending is None or p.pending > 0):
        status = "interrupted"
    elif run.budget_hit:
        status = "budget"
    elif p.failed or state.errors:
        status = "errors"
    else:
        status = "done"
    run.report(force=True)
    return BatchSummary(
        status=status,  # type: ignore[arg-type]
        progress=p,
        output=str(output),
        errors=dict(run.stats.errors),
        providers=run.stats.providers,
        latency=run.stats.quantiles(),
        repaired_bytes=state.repaired,
        quality=quality_summary(cli.statistics().get("metrics") or {}),
    )
