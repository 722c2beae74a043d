"""Plots for the cold-start, memory and far-tail sections of ``docs/benchmarks.md``.

Run after the benchmarks: ``python benchmarks/plot_coldtail.py``. Reads
``benchmarks/results/bench_{coldstart,memory,fartail}.json`` and writes
``docs/benchmarks_{coldstart,memory,fartail}.png``.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _common import RESULTS, ROOT

DOCS = ROOT / "docs"
OURS, BEFORE, BASE = "#1f77b4", "#aec7e8", "#7f7f7f"


def _load(name: str) -> dict[str, Any]:
    return dict(json.loads((RESULTS / f"{name}.json").read_text()))


def _bars(ax: Any, names: list[str], values: list[float], colors: list[str], unit: str) -> None:
    ax.barh(names, values, color=colors)
    ax.invert_yaxis()
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.1f} {unit}", va="center", fontsize=8)
    ax.set_xlim(right=max(values) * 1.3)


def _pooled(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(q * len(v) + 0.999999) - 1))]


def coldstart() -> None:
    rows = [r for r in _load("bench_coldstart")["results"] if r["open_first_ms"]]
    names = [r["name"] for r in rows]
    colors = [BASE if "raw" in n else BEFORE if "before" in n else OURS for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(rows) + 1.6))
    _bars(axes[0], names, [r["open_first_ms"] for r in rows], colors, "ms")
    axes[0].set_title("open a client + first answer (median, ms)")
    everything = _load("bench_coldstart")["results"]
    names2 = [r["name"] for r in everything]
    colors2 = [
        BASE if "raw" in n or n.startswith("import") else BEFORE if "before" in n else OURS
        for n in names2
    ]
    _bars(axes[1], names2, [r["import_ms"] for r in everything], colors2, "ms")
    axes[1].set_title("import (median, ms)")
    fig.tight_layout()
    fig.savefig(DOCS / "benchmarks_coldstart.png", dpi=110)
    plt.close(fig)


def memory() -> None:
    rows = _load("bench_memory")["results"]
    names = [r["name"] for r in rows]
    colors = [BASE if "raw" in n else BEFORE if "before" in n else OURS for n in names]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.4))
    _bars(ax, names, [r["rss_mb"] for r in rows], colors, "MB")
    ax.set_title("RSS after 3,000 requests (median, MB)")
    fig.tight_layout()
    fig.savefig(DOCS / "benchmarks_memory.png", dpi=110)
    plt.close(fig)


def fartail() -> None:
    report = _load("bench_fartail")
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
    for ax, what, title in ((axes[0], "complete", "complete"), (axes[1], "ttft", "stream TTFT")):
        by_name: dict[str, list[dict[str, Any]]] = {}
        for rows in report["rounds"]:
            for r in rows:
                if r["what"] == what:
                    by_name.setdefault(r["name"], []).append(r)
        names = list(by_name)
        x = range(len(names))
        for off, p, label, color in (
            (-0.2, 0.99, "p99", "#1f77b4"),
            (0.2, 0.999, "p99.9", "#ff7f0e"),
        ):
            vals = [_pooled([x for r in by_name[n] for x in r["latencies_ms"]], p) for n in names]
            ax.bar([i + off for i in x], vals, width=0.4, label=label, color=color)
            for i, v in zip(x, vals, strict=True):
                ax.text(i + off, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        best = report["limit"]["best"]
        for q, style in (("0.99", ":"), ("0.999", "--")):
            ax.axhline(best[q]["ms"], color="black", linestyle=style, linewidth=0.8)
        ax.set_xticks(list(x))
        extra = [statistics.median(r["extra_sent"] for r in by_name[n]) * 100 for n in names]
        ax.set_xticklabels(
            [f"{n}\n+{e:.1f}% requests" for n, e in zip(names, extra, strict=True)], fontsize=8
        )
        ax.set_title(f"{title} (ms, all rounds pooled)")
        ax.set_yscale("log")
    axes[0].legend(title="dotted/dashed: best possible p99/p99.9", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(DOCS / "benchmarks_fartail.png", dpi=110)
    plt.close(fig)


def markdown() -> str:
    """The tables of the three sections, from the JSON results."""
    out = []
    cs = _load("bench_coldstart")
    out.append("| | import | open + first answer | × raw aiohttp | − raw aiohttp |")
    out.append("|---|---:|---:|---:|---:|")
    for r in cs["results"]:
        if r["open_first_ms"]:
            out.append(
                f"| {r['name']} | {r['import_ms']:.0f} ms | {r['open_first_ms']:.1f} ms | "
                f"{r['open_first_vs_raw']:.2f}x | {r['open_first_minus_raw_ms']:+.1f} ms |"
            )
        else:
            out.append(f"| {r['name']} | {r['import_ms']:.0f} ms | | | |")
    out.append("")
    mem = _load("bench_memory")
    out.append("| | RSS after 3,000 requests | × raw aiohttp |")
    out.append("|---|---:|---:|")
    for r in mem["results"]:
        out.append(f"| {r['name']} | {r['rss_mb']:.1f} MB | {r['rss_vs_raw']:.2f}x |")
    out.append("")
    ft = _load("bench_fartail")
    out.append(
        "| round | | p50 | p99 | p99.9 | p99 cut | p99.9 cut | extra sent | unsent | denied |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, rows in enumerate(ft["rounds"], 1):
        base: dict[str, dict[str, Any]] = {}
        for r in rows:
            b = base.setdefault(r["what"], r)
            out.append(
                f"| {i} | {r['what']}: {r['name']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['p999_ms']:.1f} | {b['p99_ms'] / r['p99_ms']:.2f}x | "
                f"{b['p999_ms'] / r['p999_ms']:.2f}x | {100 * r['extra_sent']:.1f}% | "
                f"{r['hedge_unsent']} | {r.get('hedge_denied', '')} |"
            )
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    if "--markdown" in sys.argv:
        print(markdown())
        raise SystemExit(0)
    for name, fn in (
        ("bench_coldstart", coldstart),
        ("bench_memory", memory),
        ("bench_fartail", fartail),
    ):
        if (RESULTS / f"{name}.json").exists():
            fn()
            print(f"plotted {name}")
