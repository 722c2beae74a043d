"""The Ray Data stage: rows of batch requests in, one row per request out.

:class:`AsyncLLMStage` is a callable class for ``Dataset.map_batches``. Ray makes one per
actor; each holds one long-lived :class:`~asyncllm.Client` built from the run configuration
(limits, cache, budget, strategy) and runs every row of a batch concurrently, up to the
configuration's ``[client] concurrency`` requests in flight per actor. The client is opened
and closed by a task of its own and closed when Ray lets the actor go (see
:mod:`._client_host`). :func:`process` wires it up for the common case.

Input rows are lines in any batch input shape (OpenAI Batch API, Anthropic Message
Batches, simple), either as JSON text in a ``raw`` column (with its 1-based ``line``), or
as the decoded columns themselves (``ray.data.read_json``), optionally with a ``_line``
column. Columns that Arrow filled with nulls (keys other rows had) are dropped first.

Output rows: ``custom_id``, ``line``, ``error`` (the error code, or null) and ``record``:
the record exactly as ``asyncllm run`` writes it (JSON text, OpenAI batch output shape).
A request that fails, or a line that cannot be read, is an error row, never an exception:
one output row per input row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from .._exceptions import ConfigurationError, LimiterUnavailable
from ..batch import (
    CURRENT,
    BatchItem,
    BatchObserver,
    LineError,
    Tally,
    build_client,
    error_code,
    error_record,
    is_budget_refusal,
    line_error_record,
    load_config,
    parse_line,
    success_record,
)
from ._client_host import ClientHost
from ._shared import check_shared, prepare_config

if TYPE_CHECKING:
    from ray.data import Dataset

    from .._client import Client

__all__ = ["BUDGET_REFUSED", "LIMITER_UNAVAILABLE", "AsyncLLMStage", "process", "record_of"]

#: The ``error`` column of a row the budget refused (the CLI writes no record for it, so a
#: rerun with a larger budget sends it).
BUDGET_REFUSED = "budget_exceeded"
#: The ``error`` column of a row refused because the shared limiter's Redis could not be
#: reached (``on_redis_error="refuse"``): nothing was sent; the CLI writes no record, so a
#: rerun sends it once Redis is back.
LIMITER_UNAVAILABLE = "limiter_unavailable"


def _limiter_down(error: BaseException) -> bool:
    if isinstance(error, LimiterUnavailable):
        return True
    if isinstance(error, BaseExceptionGroup):
        return any(_limiter_down(e) for e in error.exceptions)
    cause = error.__cause__
    return cause is not None and cause is not error and _limiter_down(cause)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def record_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The output record a stage row carries (the dict ``asyncllm run`` writes)."""
    record: dict[str, Any] = orjson.loads(row["record"])
    return record


class AsyncLLMStage:
    """A ``map_batches`` stage holding one :class:`~asyncllm.Client` per actor.

    Args:
        config: The run configuration as a plain mapping (see :func:`prepare_config`; a
            TOML path is read here, on the actor).
        concurrency: Requests in flight per actor (default: ``[client] concurrency``).
    """

    def __init__(self, config: Mapping[str, Any] | str, *, concurrency: int | None = None):
        self._config = load_config(prepare_config(config))
        self._rule = self._config.model_rule()
        self._concurrency = concurrency or self._config.concurrency
        cfg = self._config
        self._host = ClientHost(lambda: build_client(cfg, observers=[BatchObserver()], log=False))
        self._gate: anyio.Semaphore | None = None

    async def _open(self) -> tuple[Client, anyio.Semaphore]:
        client = await self._host.get()
        if self._gate is None:
            self._gate = anyio.Semaphore(self._concurrency)
        return client, self._gate

    async def aclose(self) -> None:
        """Close the actor's client (budget bookings, cache writes, connections)."""
        await self._host.aclose()

    def __del__(self) -> None:
        # Ray Data drops the stage when its actor exits gracefully, on another thread than
        # the event loop's: close the client there (see ClientHost.close).
        with contextlib.suppress(Exception):  # a finalizer never raises
            self._host.close()

    async def __call__(self, batch: Any) -> dict[str, list[Any]]:
        """Answer every row of ``batch``; returns one output row per input row, in order."""
        client, gate = await self._open()
        rows = _rows(batch)
        out: list[dict[str, Any]] = [{}] * len(rows)

        async def one(i: int, row: dict[str, Any]) -> None:
            async with gate:
                out[i] = await self._answer(client, row)

        async with anyio.create_task_group() as tg:
            for i, row in enumerate(rows):
                tg.start_soon(one, i, row)
        return {k: [r[k] for r in out] for k in ("custom_id", "line", "error", "record")}

    async def _answer(self, client: Client, row: dict[str, Any]) -> dict[str, Any]:
        if "raw" in row and isinstance(row["raw"], (str, bytes)):
            line = int(row.get("line") or 0)
            parsed = parse_line(row["raw"], line, rule=self._rule)
        else:
            obj = _strip_nulls(row)
            line = int(obj.pop("_line", 0) or 0)
            parsed = parse_line(obj, line, rule=self._rule)
        if parsed is None:
            parsed = LineError(line, None, "invalid_line", f"line {line}: blank line")
        if isinstance(parsed, LineError):
            return _row(line_error_record(parsed), parsed.custom_id, line, parsed.code)
        return await self._send(client, parsed)

    async def _send(self, client: Client, item: BatchItem) -> dict[str, Any]:
        tally = Tally()
        token = CURRENT.set(tally)
        try:
            response = await client.complete(item.request)
        except Exception as exc:
            if is_budget_refusal(exc):
                code = BUDGET_REFUSED
            elif _limiter_down(exc):
                code = LIMITER_UNAVAILABLE
            else:
                code = error_code(exc)
            record = error_record(
                item, exc, cost_usd=tally.cost_usd, attempts=tally.attempts, hedged=tally.hedged
            )
            return _row(record, item.custom_id, item.line, code)
        finally:
            CURRENT.reset(token)
        cost = tally.cost_usd if tally.attempts else (response.cost_usd or 0.0)
        record = success_record(
            item, response, cost_usd=cost, attempts=tally.attempts or 1, hedged=tally.hedged
        )
        return _row(record, item.custom_id, item.line, None)


def _rows(batch: Any) -> list[dict[str, Any]]:
    if hasattr(batch, "to_pylist"):
        rows: list[dict[str, Any]] = batch.to_pylist()
        return rows
    cols = {k: list(v) for k, v in dict(batch).items()}
    n = len(next(iter(cols.values()))) if cols else 0
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def _row(record: dict[str, Any], cid: str | None, line: int, error: str | None) -> dict[str, Any]:
    return {"custom_id": cid, "line": line, "error": error, "record": orjson.dumps(record).decode()}


def process(
    dataset: Dataset,
    config: str | Path | Mapping[str, Any],
    *,
    actors: int = 1,
    redis_url: str | None = None,
    concurrency: int | None = None,
    batch_size: int | None = None,
    num_cpus: float = 0.25,
    **ray_remote_args: Any,
) -> Dataset:
    """Answer every row of ``dataset`` with ``actors`` actors; one output row per input row.

    Args:
        dataset: Rows in a batch input shape (see the module docstring).
        config: The run configuration: a TOML path or a mapping, as ``asyncllm run`` reads.
        actors: Actors (each one long-lived client).
        redis_url: Share limits, cache and budget between the actors through this Redis
            (also read from a top-level ``redis_url`` in ``config``).
        concurrency: Requests in flight per actor (default: ``[client] concurrency``).
        batch_size: Rows per batch (default: twice the per-actor concurrency).
        num_cpus: CPUs reserved per actor (the work is waiting on the network).
        **ray_remote_args: Passed to ``map_batches`` (``runtime_env`` with the API keys'
            environment variables on a cluster, ``memory``...).

    Raises:
        ConfigurationError: a bad config, or limits or a budget without Redis for more
            than one actor (they would be multiplied).
    """
    data = prepare_config(config, redis_url=redis_url)
    check_shared(data, actors)
    checked = load_config(data)  # fail here, on the driver, not in every actor
    per_actor = concurrency or checked.concurrency
    if per_actor < 1:
        raise ConfigurationError("concurrency must be at least 1")
    # Ray Data restarts an actor that dies and retries its batches (max_restarts=-1 and
    # max_task_retries=-1 are its defaults for actor pools).
    return dataset.map_batches(
        AsyncLLMStage,
        fn_constructor_kwargs={"config": data, "concurrency": per_actor},
        batch_size=batch_size or 2 * per_actor,
        batch_format="pyarrow",
        concurrency=actors,
        num_cpus=num_cpus,
        **ray_remote_args,
    )
