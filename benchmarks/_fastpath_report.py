"""Writing ``bench_fastpath.py`` results: JSON, a Markdown section and a PNG plot.

``docs/benchmarks.md`` may hold other benchmarks' sections too: only the part between the
``fastpath`` markers is replaced (the file is created when missing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASELINE = "raw aiohttp+orjson"
START = "<!-- fastpath:start -->"
END = "<!-- fastpath:end -->"
PLOT = "benchmarks_fastpath.png"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}×" if base > 0 else "n/a"


def _goals(results: dict[str, Any]) -> list[str]:
    base = results.get(BASELINE)
    native = results.get("asyncllm native (openai)")
    if base is None or native is None:
        return []
    lines = []
    for key, label in (("cpu_us_per_request", "per request"), ("cpu_us_per_chunk", "per chunk")):
        r = native[key] / base[key]
        verdict = "met" if r <= 2.0 else "NOT met"
        lines.append(f"- asyncllm native within 2× of raw aiohttp {label}: {r:.2f}× ({verdict})")
    for other, need in (("openai SDK", 5.0), ("anthropic SDK", 5.0), ("litellm Router", 15.0)):
        o = results.get(other)
        if o is None:
            continue
        r = o["cpu_us_per_request"] / native["cpu_us_per_request"]
        verdict = "met" if r >= need else "NOT met"
        lines.append(
            f"- asyncllm native ≥{need:g}× cheaper per request than {other}: {r:.1f}× ({verdict})"
        )
    return lines


def _section(data: dict[str, Any]) -> str:
    results: dict[str, Any] = data["results"]
    meta = data["meta"]
    base = results[BASELINE]
    rows = [
        "| client | CPU µs / request | × raw | CPU µs / streamed chunk | × raw | "
        "CPU µs / 1-chunk stream | req/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in sorted(results.items(), key=lambda kv: kv[1]["cpu_us_per_request"]):
        rows.append(
            f"| {name} | {r['cpu_us_per_request']:.0f} | "
            f"{_ratio(r['cpu_us_per_request'], base['cpu_us_per_request'])} | "
            f"{r['cpu_us_per_chunk']:.1f} | "
            f"{_ratio(r['cpu_us_per_chunk'], base['cpu_us_per_chunk'])} | "
            f"{r['cpu_us_per_stream_request']:.0f} | {r['requests_per_s']:.0f} |"
        )
    n = meta["long_stream_chunks"]
    imports = ", ".join(f"`{k}` {v * 1000:.0f} ms" for k, v in data["import_s"].items())
    goals = _goals(results)
    parts = [
        START,
        "## Fast path: client CPU per call",
        "",
        "`python benchmarks/bench_fastpath.py` (`--quick` for a short run). The simulator runs "
        "in its own process on the other core; each client sends the same chat request at "
        f"concurrency {meta['concurrency']}. Medians of {meta['rounds']} interleaved rounds "
        f"of {meta['seconds_per_measurement']} s per measurement; {meta['cpus']} CPUs, "
        f"Python {meta['python']}, pinned: {meta['pinned']}, run {meta['date']}.",
        "",
        "CPU is `time.process_time()` of the client process. *Per request*: a non-streamed "
        f"request of 16 words. *Per streamed chunk*: the marginal cost of a chunk, ({n}-chunk "
        f"stream − 1-chunk stream) / {n - 1}. `asyncllm native/sdk` go through `Client.complete` / "
        "`Client.stream` (orchestrator, logging observer included); *driver only* calls the "
        "native driver directly. req/s is bounded by the simulator for the fast clients.",
        "",
        *rows,
        "",
        f"![fast path CPU]({PLOT})",
        "",
        f"Import time (fresh interpreter, median): {imports}.",
        "",
    ]
    if goals:
        parts += ["Targets:", "", *goals, ""]
    parts.append(END)
    return "\n".join(parts)


def _plot(data: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return False
    results = data["results"]
    names = sorted(results, key=lambda n: results[n]["cpu_us_per_request"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.5))
    for ax, key, title in (
        (axes[0], "cpu_us_per_request", "CPU µs per non-streamed request"),
        (axes[1], "cpu_us_per_chunk", "CPU µs per streamed chunk (marginal)"),
    ):
        values = [max(results[n][key], 0.01) for n in names]
        colors = ["tab:green" if n.startswith("asyncllm") else "tab:gray" for n in names]
        ax.barh(names, values, color=colors)
        ax.set_xscale("log")
        ax.set_xlim(left=min(values) / 4, right=max(values) * 3)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title)
        ax.invert_yaxis()
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.0f}" if v >= 10 else f" {v:.1f}", va="center", fontsize=8)
    axes[1].set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(data: dict[str, Any], root: Path) -> Path:
    """Write the JSON result and, for full runs, the Markdown section and the plot.

    A ``--quick`` run is a smoke test: its JSON goes to its own file and the docs keep the
    last full run's numbers.
    """
    results_dir = root / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    quick = data["meta"]["quick"]
    path = results_dir / ("bench_fastpath-quick.json" if quick else "bench_fastpath.json")
    path.write_text(json.dumps(data, indent=1))
    if quick:
        return path
    docs = root / "docs"
    docs.mkdir(exist_ok=True)
    _plot(data, docs / PLOT)
    md = docs / "benchmarks.md"
    section = _section(data)
    if md.exists():
        text = md.read_text()
        if START in text and END in text:
            head, _, rest = text.partition(START)
            _, _, tail = rest.partition(END)
            text = head + section + tail
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
    else:
        text = "# Benchmarks\n\n" + section + "\n"
    md.write_text(text)
    return path
