"""The per-provider quality table of a run, from ``client.statistics()["metrics"]``.

Reads the plain dicts ``MetricsObserver.statistics()`` returns, so it needs nothing from
``telemetry/``.
"""

from __future__ import annotations

from typing import Any

from .._hooks import FINISH_CATEGORIES

__all__ = ["format_quality_summary", "quality_summary"]

_COLUMNS = (
    ("provider", "provider"),
    ("model", "model"),
    ("answers", "answers"),
    ("stop", "stop"),
    ("length", "length"),
    ("tool_calls", "tools"),
    ("content_filter", "filter"),
    ("refusal", "refusal"),
    ("empty", "empty"),
    ("invalid_json", "bad_json"),
    ("invalid_tool_arguments", "bad_args"),
    ("rejected", "rejected"),
    ("output_tokens_p50", "out_p50"),
    ("feedback", "feedback"),
    ("score_mean", "score"),
)


def quality_summary(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per provider and model that answered, from ``MetricsObserver.statistics()``.

    Each row: ``provider``, ``model``, ``answers``, one count per finish category
    (``stop``, ``length``, ``tool_calls``, ``content_filter``, ``refusal``, ``other``,
    ``unknown``), ``empty``, ``invalid_json``, ``invalid_tool_arguments``, ``rejected``,
    ``rejections`` (by code), ``output_tokens_p50``, ``feedback`` (count) and
    ``score_mean``. Rows are sorted by provider and model.
    """
    rows: list[dict[str, Any]] = []
    for provider, models in sorted(metrics.get("providers", {}).items()):
        for model, series in sorted(models.items()):
            q = series.get("quality") or {}
            fb = series.get("feedback") or {}
            if not q.get("answers") and not fb.get("count"):
                continue
            row: dict[str, Any] = {"provider": provider, "model": model}
            row["answers"] = q.get("answers", 0)
            row.update(q.get("finish_reasons", dict.fromkeys(FINISH_CATEGORIES, 0)))
            for key in ("empty", "invalid_json", "invalid_tool_arguments", "rejected"):
                row[key] = q.get(key, 0)
            row["rejections"] = dict(q.get("rejections", {}))
            row["output_tokens_p50"] = (q.get("output_tokens") or {}).get("p50")
            row["feedback"] = fb.get("count", 0)
            row["score_mean"] = (fb.get("score") or {}).get("mean")
            rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_quality_summary(metrics: dict[str, Any]) -> str:
    """:func:`quality_summary` as a plain-text table (empty string when nothing answered)."""
    rows = quality_summary(metrics)
    if not rows:
        return ""
    table = [[title for _, title in _COLUMNS]]
    table += [[_cell(row.get(key)) for key, _ in _COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in table
    ]
    return "\n".join(line.rstrip() for line in lines)
