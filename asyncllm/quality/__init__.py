"""Answer quality: signals per provider and model, acceptance predicates, user feedback.

* :class:`Quality` and :func:`assess`: what an answer says about its provider (finish
  reason category, empty, invalid structured output, invalid tool arguments, output
  tokens). The orchestrator assesses every answer; observers read ``AttemptInfo.quality``.
* Acceptance predicates for ``Client(accept=...)`` and ``client.complete(..., accept=...)``:
  :func:`not_truncated`, :func:`not_empty`, :func:`no_refusal`, :func:`no_content_filter`,
  :func:`valid_json`, :func:`matches` (a pydantic model), :func:`valid_tool_arguments`,
  and :func:`all_of` to combine them.
* :func:`quality_summary` / :func:`format_quality_summary`: the per-provider quality table
  of a run, from ``client.statistics()["metrics"]``.

See ``docs/quality.md``.
"""

from __future__ import annotations

from .._hooks import FeedbackInfo
from ._accept import (
    Accept,
    Predicate,
    Verdict,
    all_of,
    matches,
    no_content_filter,
    no_refusal,
    not_empty,
    not_truncated,
    reason_code,
    valid_json,
    valid_tool_arguments,
)
from ._signals import FINISH_CATEGORIES, FinishCategory, Quality, assess, finish_category
from ._summary import format_quality_summary, quality_summary

# Seams for the client layer and the orchestrator (asyncllm/_client.py, _pipeline.py,
# _client_stream.py, orchestrator/): a sibling enters a room through its package face
# only (the import-linter contract in pyproject.toml). Not in ``__all__``: not part of
# the user API, no stability promise.
# isort: off
from ._accept import Checks as Checks, coerce_accept as coerce_accept, judge as judge
from ._feedback import RequestLedger as RequestLedger, build_feedback as build_feedback
# isort: on

#: The seams above, by name (not in ``__all__``; ``tests/test_architecture.py`` checks both).
__seams__ = (
    "Checks",
    "RequestLedger",
    "build_feedback",
    "coerce_accept",
    "judge",
)

__all__ = [
    "FINISH_CATEGORIES",
    "Accept",
    "FeedbackInfo",
    "FinishCategory",
    "Predicate",
    "Quality",
    "Verdict",
    "all_of",
    "assess",
    "finish_category",
    "format_quality_summary",
    "matches",
    "no_content_filter",
    "no_refusal",
    "not_empty",
    "not_truncated",
    "quality_summary",
    "reason_code",
    "valid_json",
    "valid_tool_arguments",
]
