"""What ``asyncllm run`` shows while it works: a ``rich`` progress bar on a terminal, a
one-line report every few seconds otherwise, and a summary table at the end."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..batch import BatchProgress, BatchSummary

__all__ = ["LineDisplay", "RichDisplay", "print_summary"]


class RecentRate:
    """Records and output tokens per second over the last ``window`` seconds.

    The average since the start is wrong as soon as the pace changes: a batch opens with a
    burst the rate limiter allows, then runs at the limit's pace (or a budget, a slow
    provider...), and an ETA from the average promises seconds where minutes are left.
    Samples are kept at most every ``step`` seconds, so memory stays bounded at any rate.
    """

    def __init__(self, window: float = 15.0, step: float = 0.5) -> None:
        self._window = window
        self._step = step
        self._samples: deque[tuple[float, int, int]] = deque()

    def update(self, p: BatchProgress, now: float | None = None) -> tuple[float, float]:
        """Add a snapshot; ``(records/s, output tokens/s)`` over the recent window."""
        now = time.monotonic() if now is None else now
        records = p.succeeded + p.failed
        samples = self._samples
        if not samples or now - samples[-1][0] >= self._step:
            samples.append((now, records, p.output_tokens))
        while len(samples) > 2 and now - samples[1][0] >= self._window:
            samples.popleft()
        t0, r0, k0 = samples[0]
        span = now - t0
        if span < 1.0:  # too little history yet: the run's average
            tps = p.output_tokens / p.elapsed if p.elapsed > 0 else 0.0
            return p.rate, tps
        return (records - r0) / span, (p.output_tokens - k0) / span


def _extras(p: BatchProgress, rate: float, tps: float) -> str:
    budget = f" of ${p.budget_usd:.4f}" if p.budget_usd is not None else ""
    return (
        f"{rate:.0f} req/s  {tps:.0f} tok/s  ${p.cost_usd:.4f}{budget}  "
        f"{p.failed} errors  {p.cache_hits} cached  {p.hedges} hedged"
    )


class RichDisplay:
    """A live progress bar on stderr (for a terminal)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[extras]}"),
            console=console,
            transient=False,
        )
        self._task: Any = None
        self._rate = RecentRate()

    def __enter__(self) -> RichDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, p: BatchProgress) -> None:
        """Show a snapshot."""
        extras = _extras(p, *self._rate.update(p))
        if self._task is None:
            self._task = self._progress.add_task(
                "batch", total=p.total, completed=p.done, extras=extras
            )
        else:
            self._progress.update(self._task, total=p.total, completed=p.done, extras=extras)


class LineDisplay:
    """One line on stderr every ``interval`` seconds (when stderr is not a terminal)."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self._stream = stream
        self._interval = interval
        self._last = 0.0
        self._rate = RecentRate()

    def __enter__(self) -> LineDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, p: BatchProgress) -> None:
        """Print a snapshot when ``interval`` has passed since the last one."""
        now = time.monotonic()
        rate, tps = self._rate.update(p, now)
        if now - self._last < self._interval:
            return
        self._last = now
        total = "?" if p.total is None else str(p.total)
        pct = f" ({100 * p.done / p.total:.0f}%)" if p.total else ""
        left = (p.total or 0) - p.done
        eta = f", ETA {left / rate:.0f}s" if rate > 0 and p.total else ""
        print(
            f"asyncllm run: {p.done}/{total} done{pct}{eta}, {_extras(p, rate, tps)}",
            file=self._stream,
            flush=True,
        )


def print_summary(summary: BatchSummary, console: Console) -> None:
    """The final table: counts, latency quantiles, tokens, cost, per provider, errors."""
    p = summary.progress
    table = Table(title="asyncllm run", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("status", summary.status)
    table.add_row("records", f"{p.done} of {p.total if p.total is not None else '?'}")
    table.add_row("this run", f"{p.succeeded} answered, {p.failed} errors in {p.elapsed:.1f}s")
    if p.skipped:
        table.add_row("from earlier runs", str(p.skipped))
    if p.pending:
        table.add_row("pending", str(p.pending))
    if summary.latency:
        table.add_row(
            "latency", ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in summary.latency.items())
        )
    table.add_row("tokens", f"{p.input_tokens} in, {p.output_tokens} out")
    budget = f" of ${p.budget_usd:.4f}" if p.budget_usd is not None else ""
    earlier = " (earlier runs included)" if p.skipped or p.resent else ""
    table.add_row("cost", f"${p.cost_usd:.6f}{budget}{earlier}")
    table.add_row("cache hits / hedged", f"{p.cache_hits} / {p.hedges}")
    for name, s in sorted(summary.providers.items()):
        table.add_row(
            f"provider {name}",
            f"{s['requests']} answers, {s['input_tokens']}+{s['output_tokens']} tokens, "
            f"${s['cost_usd']:.6f}",
        )
    for code, n in sorted(summary.errors.items(), key=lambda kv: -kv[1]):
        table.add_row(f"error {code}", str(n))
    for q in summary.quality:
        signals = [
            f"{q[key]} {key}"
            for key in ("stop", "length", "tool_calls", "content_filter", "refusal", "empty",
                        "invalid_json", "invalid_tool_arguments", "rejected")
            if q.get(key)
        ]  # fmt: skip
        table.add_row(
            f"quality {q['provider']}/{q['model']}",
            f"{q['answers']} answers: " + (", ".join(signals) or "no signal"),
        )
    if summary.repaired_bytes:
        table.add_row("repaired", f"{summary.repaired_bytes} bytes of a torn last line")
    table.add_row("output", summary.output)
    console.print(table)


def console_for(stream: TextIO = sys.stderr) -> Console:
    """A console on ``stream`` (stderr: stdout stays free for pipelines)."""
    return Console(file=stream, highlight=False)
