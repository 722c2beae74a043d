"""Quality counters of the metrics observer, and the quality summary a report prints.

:class:`QualityCounts` keeps, per provider and model, what :class:`~asyncllm.quality.Quality`
says of each answer; :class:`FeedbackCounts` the scores and labels users attached with
``client.feedback(...)``. :func:`quality_summary` turns ``MetricsObserver.statistics()``
(or ``client.statistics()["metrics"]``) into one row per provider and model, and
:func:`format_quality_summary` into a plain-text table (what a batch run prints at its end).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..quality import FINISH_CATEGORIES, reason_code
from ._histogram import LogHistogram

if TYPE_CHECKING:
    from .._hooks import FeedbackInfo
    from ..quality import Quality

__all__ = ["FeedbackCounts", "QualityCounts"]

#: Distinct rejection codes and feedback labels kept apart; the rest count as "other"
#: (they come from user code: an unbounded set would grow the metrics without end).
MAX_KEYS = 64


def _bump(counts: dict[str, int], key: str) -> None:
    if key not in counts and len(counts) >= MAX_KEYS:
        key = "other"
    counts[key] = counts.get(key, 0) + 1


def _rate(n: int, d: int) -> float | None:
    return n / d if d else None


class QualityCounts:
    """What the answers of one provider and model looked like."""

    __slots__ = (
        "answers",
        "empty",
        "finish",
        "invalid_json",
        "invalid_tool_arguments",
        "output_tokens",
        "rejected",
        "rejections",
        "structured",
        "tool_answers",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.answers = self.empty = self.rejected = 0
        self.structured = self.invalid_json = 0
        self.tool_answers = self.tool_calls = self.invalid_tool_arguments = 0
        self.finish: dict[str, int] = dict.fromkeys(FINISH_CATEGORIES, 0)
        self.rejections: dict[str, int] = {}
        self.output_tokens = LogHistogram()

    def add(self, q: Quality) -> None:
        """Count one answer."""
        self.answers += 1
        self.finish[q.finish] = self.finish.get(q.finish, 0) + 1
        self.empty += q.empty
        if q.structured:
            self.structured += 1
            self.invalid_json += q.invalid_json
        if q.tool_calls:
            self.tool_answers += 1
            self.tool_calls += q.tool_calls
            self.invalid_tool_arguments += q.invalid_tool_arguments
        if q.rejected is not None:
            self.rejected += 1
            _bump(self.rejections, reason_code(q.rejected))
        if q.output_tokens is not None:
            self.output_tokens.add(q.output_tokens)

    def merge(self, other: QualityCounts) -> None:
        """Add ``other``'s counts to these (several models of one provider, say)."""
        self.answers += other.answers
        self.empty += other.empty
        self.rejected += other.rejected
        self.structured += other.structured
        self.invalid_json += other.invalid_json
        self.tool_answers += other.tool_answers
        self.tool_calls += other.tool_calls
        self.invalid_tool_arguments += other.invalid_tool_arguments
        for key, n in other.finish.items():
            self.finish[key] = self.finish.get(key, 0) + n
        for key, n in other.rejections.items():
            self.rejections[key] = self.rejections.get(key, 0) + n
        self.output_tokens.merge(other.output_tokens)

    def stats(self) -> dict[str, Any]:
        """Counts, and rates over the answers that could show each problem."""
        n = self.answers
        finish = self.finish
        return {
            "answers": n,
            "finish_reasons": dict(finish),
            "empty": self.empty,
            "structured": self.structured,
            "invalid_json": self.invalid_json,
            "tool_calls": self.tool_calls,
            "invalid_tool_arguments": self.invalid_tool_arguments,
            "rejected": self.rejected,
            "rejections": dict(self.rejections),
            "output_tokens": self.output_tokens.summary(),
            "rates": {
                "length": _rate(finish["length"], n),
                "content_filter": _rate(finish["content_filter"], n),
                "refusal": _rate(finish["refusal"], n),
                "empty": _rate(self.empty, n),
                "invalid_json": _rate(self.invalid_json, self.structured),
                "invalid_tool_arguments": _rate(self.invalid_tool_arguments, self.tool_calls),
                "rejected": _rate(self.rejected, n),
            },
        }


class FeedbackCounts:
    """Scores and labels attached to requests, with the rated requests' latency and cost."""

    __slots__ = (
        "cost_usd",
        "count",
        "labels",
        "latency",
        "score_max",
        "score_min",
        "score_sum",
        "scores",
    )  # fmt: skip

    def __init__(self) -> None:
        self.count = self.scores = 0
        self.score_sum = 0.0
        self.score_min = math.inf
        self.score_max = -math.inf
        self.labels: dict[str, int] = {}
        self.latency = LogHistogram()
        self.cost_usd = 0.0

    def add(self, info: FeedbackInfo) -> None:
        """Count one piece of feedback."""
        self.count += 1
        if info.score is not None:
            self.scores += 1
            self.score_sum += info.score
            self.score_min = min(self.score_min, info.score)
            self.score_max = max(self.score_max, info.score)
        if info.label is not None:
            _bump(self.labels, info.label)
        if info.latency is not None:
            self.latency.add(info.latency)
        if info.cost_usd is not None:
            self.cost_usd += info.cost_usd

    def stats(self) -> dict[str, Any]:
        """Counts, score mean/min/max, labels, and the rated requests' latency and cost."""
        return {
            "count": self.count,
            "score": {
                "count": self.scores,
                "mean": self.score_sum / self.scores if self.scores else None,
                "min": self.score_min if self.scores else None,
                "max": self.score_max if self.scores else None,
            },
            "labels": dict(self.labels),
            "latency_s": self.latency.summary(),
            "cost_usd": self.cost_usd,
        }
