"""``asyncllm run --ray``: the batch file job on Ray Data, with the local batch's contract.

The driver does what the local runner does around the requests, with the same code
(``asyncllm.batch``): the input's pre-pass (fingerprint, duplicate ids refused), the
output's check against that fingerprint and its torn-tail repair, the ids already answered
(skipped). Only the requests go to Ray: the lines still to answer become a Dataset, the
actors answer them (:func:`~asyncllm.ray.process`), and the driver appends each record as
its row comes back, one writer, fsynced like the local batch. A row Ray delivers twice (a
task retried after its actor died) is written once: one record per ``custom_id``. A
request the budget refused, or one refused because the shared limiter's Redis was down,
gets no record, so rerunning the same command (with a larger budget, once Redis is back)
sends it; rerunning also finishes a run that was killed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson

from ..batch import (
    EXIT_BUDGET,
    EXIT_DONE,
    EXIT_ERRORS,
    EXIT_INTERRUPTED,
    Appender,
    load_config,
    parse_line,
    prepare_output,
    read_lines,
    record_is_transient,
    scan_input,
)
from ._shared import check_shared, prepare_config
from ._stage import BUDGET_REFUSED, LIMITER_UNAVAILABLE, process

__all__ = ["run_file"]


async def run_file(
    config: str | Path,
    input: str | Path,
    output: str | Path,
    *,
    address: str | None = None,
    actors: int = 1,
    redis_url: str | None = None,
    concurrency: int | None = None,
    budget: float | None = None,
    restart: bool = False,
    retry_errors: bool = False,
    retry_transient: bool = True,
) -> dict[str, Any]:
    """Run a batch file on Ray; returns counts and the CLI exit code under ``"exit_code"``.

    The counts: ``written``, ``errors`` (error records written), ``transient`` (of those,
    failures a rerun sends again), ``resent`` (earlier error records sent again by this
    run), ``skipped`` (done by an earlier run), ``budget_refused`` and
    ``limiter_unavailable`` (pending: no record),
    ``duplicates_dropped`` (rows Ray delivered twice), and when anything was sent,
    ``first_row_s`` (until the first answers came back: actors starting) and ``seconds``.

    Args:
        config: TOML run configuration (the one ``asyncllm run`` reads).
        input: JSONL input file.
        output: JSONL output file (appended to, never truncated).
        address: Ray cluster address (default: a local Ray, or the one already started).
        actors: Actors answering requests.
        redis_url: Share limits, cache and budget through this Redis.
        concurrency: Requests in flight per actor (default: ``[client] concurrency``).
        budget: Spend limit in USD for this batch, instead of ``[budget] usd``.
        restart: Start over: an output of another input (or this one) is moved aside.
        retry_errors: Send again the requests whose record is an error (their records
            are replaced, one record per id at every instant).
        retry_transient: Send again the requests whose record is a transient failure's
            (on by default; see :class:`~asyncllm.batch.BatchOptions`).

    An in-process budget (no ``redis_url``) is lowered by what earlier runs of this batch
    spent, as the local run does, so a resumed run cannot spend the budget twice; a Redis
    budget keeps its own count.

    Raises:
        BatchInputError: unreadable input, duplicate ids, an output of another input.
        ConfigurationError: a bad config, or limits or a budget without Redis for more
            than one actor.
    """
    import ray

    data = prepare_config(config, redis_url=redis_url)
    if budget is not None:
        data["budget"] = {**(data.get("budget") or {}), "usd": budget}
    check_shared(data, actors)
    checked = load_config(data)
    scan = await scan_input(input)
    state = await prepare_output(
        output, fingerprint=scan.fingerprint, input_name=str(input),
        exact_ids=bool(scan.exact_ids), restart=restart, retry_errors=retry_errors,
        retry_transient=retry_transient,
    )  # fmt: skip
    _lower_budget(data, state.spent_usd)
    rule = checked.model_rule()
    todo: list[dict[str, Any]] = []
    async for lineno, raw in read_lines(input):
        parsed = parse_line(raw, lineno, rule=rule)
        if parsed is None:
            continue
        cid = parsed.custom_id
        if (cid in state.done) if cid is not None else (lineno in state.done_lines):
            continue
        todo.append({"line": lineno, "raw": raw.decode("utf-8", errors="replace")})
    counts: dict[str, Any] = {"skipped": state.records, "written": 0, "errors": 0,
                              "transient": 0, "resent": state.resent,
                              "budget_refused": 0, "limiter_unavailable": 0,
                              "duplicates_dropped": 0}  # fmt: skip
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        ds = process(ray.data.from_items(todo), data, actors=actors, concurrency=concurrency)
        appender = Appender(output, fsync_interval=checked.batch.fsync_interval)
        try:
            await _drain(ds, appender, counts)
        finally:
            await appender.aclose()
    if counts["budget_refused"]:
        counts["exit_code"] = EXIT_BUDGET
    elif counts["limiter_unavailable"]:
        counts["exit_code"] = EXIT_INTERRUPTED  # pending: rerun once Redis is back
    elif counts["errors"] or state.errors:
        counts["exit_code"] = EXIT_ERRORS
    else:
        counts["exit_code"] = EXIT_DONE
    return counts


def _lower_budget(data: dict[str, Any], spent_usd: float) -> None:
    """What earlier runs spent counts against an in-process budget (the actors build it
    from ``data``); a Redis budget's store already counts it."""
    table = data.get("budget")
    if not isinstance(table, dict) or table.get("redis_url") or spent_usd <= 0:
        return
    usd = table.get("usd")
    if isinstance(usd, (int, float)) and not isinstance(usd, bool):
        data["budget"] = {**table, "usd": max(0.0, float(usd) - spent_usd)}


async def _drain(ds: Any, appender: Appender, counts: dict[str, Any]) -> None:
    """Append each row's record as it comes back; each request once."""
    written: set[tuple[str | None, int]] = set()
    t0 = time.monotonic()
    batches: Iterator[Any] = iter(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    while True:
        # Ray's iterator blocks: run it in a thread so this loop can fsync meanwhile.
        batch = await anyio.to_thread.run_sync(next, batches, None)
        if batch is None:
            counts["seconds"] = time.monotonic() - t0
            return
        counts.setdefault("first_row_s", time.monotonic() - t0)  # actors up, first answers
        for row in batch.to_pylist():
            key = (row["custom_id"], row["line"] if row["custom_id"] is None else 0)
            if key in written:
                counts["duplicates_dropped"] += 1
                continue
            if row["error"] in (BUDGET_REFUSED, LIMITER_UNAVAILABLE):
                counts[row["error"].replace("exceeded", "refused")] += 1  # no record: pending
                continue
            written.add(key)
            record = orjson.loads(row["record"])
            appender.write(record)
            counts["written"] += 1
            counts["errors"] += row["error"] is not None
            counts["transient"] += record_is_transient(record)
        await appender.maybe_sync()
