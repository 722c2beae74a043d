"""Batch fan-out: an input file of requests in, exactly one output record per request out.

The pure building blocks (no I/O, stable for other stages such as a Ray Data map):

* :func:`parse_line` reads one input line of any of the three shapes (OpenAI Batch API,
  Anthropic Message Batches, simple) into a :class:`BatchItem` or a :class:`LineError`;
* :func:`success_record`, :func:`error_record`, :func:`line_error_record` build the output
  record (the OpenAI batch output shape, asyncllm's fields under :data:`RECORD_KEY`);
* :func:`load_config` reads the TOML run configuration (or a dict) into a :class:`RunConfig`
  and :func:`build_client` turns it into a :class:`~asyncllm.Client`.

The job around them: :func:`run_batch` (resumable, exactly one record per request, budget
stop, graceful stop, progress callback), which ``asyncllm run`` drives.

See ``docs/batch.md`` for the formats, every config key, resume and budget behaviour.
"""

from __future__ import annotations

from ._config import (
    BatchSettings,
    RunConfig,
    build_budget,
    build_client,
    load_config,
    parse_config,
)
from ._estimate import Estimate, estimate
from ._input import (
    BatchInputError,
    BatchItem,
    Endpoint,
    LineError,
    LineFormat,
    ModelRule,
    parse_line,
)
from ._output import OutputState, read_output
from ._progress import (
    EXIT_BAD_INPUT,
    EXIT_BUDGET,
    EXIT_DONE,
    EXIT_ERRORS,
    EXIT_INTERRUPTED,
    BatchObserver,
    BatchProgress,
    BatchStatus,
    BatchSummary,
)
from ._record import (
    RECORD_KEY,
    error_record,
    line_error_record,
    record_cost,
    record_is_error,
    record_is_transient,
    success_record,
)
from ._runner import BatchOptions, run_batch
from ._scan import InputScan, scan_input

# Seams for the rooms that build on the batch runner (asyncllm/cli, asyncllm/ray): a
# sibling enters a room through its package face only (the import-linter contract in
# pyproject.toml). Not in ``__all__``: not part of the user API, no stability promise.
# isort: off
from ._output import Appender as Appender, prepare_output as prepare_output
from ._progress import CURRENT as CURRENT, Tally as Tally
from ._record import error_code as error_code, is_budget_refusal as is_budget_refusal
from ._scan import read_lines as read_lines
# isort: on

#: The seams above, by name (not in ``__all__``; ``tests/test_architecture.py`` checks both).
__seams__ = (
    "Appender",
    "CURRENT",
    "Tally",
    "error_code",
    "is_budget_refusal",
    "prepare_output",
    "read_lines",
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUDGET",
    "EXIT_DONE",
    "EXIT_ERRORS",
    "EXIT_INTERRUPTED",
    "RECORD_KEY",
    "BatchInputError",
    "BatchItem",
    "BatchObserver",
    "BatchOptions",
    "BatchProgress",
    "BatchSettings",
    "BatchStatus",
    "BatchSummary",
    "Endpoint",
    "Estimate",
    "InputScan",
    "LineError",
    "LineFormat",
    "ModelRule",
    "OutputState",
    "RunConfig",
    "build_budget",
    "build_client",
    "error_record",
    "estimate",
    "line_error_record",
    "load_config",
    "parse_config",
    "parse_line",
    "read_output",
    "record_cost",
    "record_is_error",
    "record_is_transient",
    "run_batch",
    "scan_input",
    "success_record",
]
