"""Build the compact price index from the installed genai-prices (a developer tool).

Regenerate after upgrading genai-prices::

    python -m asyncllm.cost._price_build

It writes ``asyncllm/cost/price_index.jsonl``; ``tests/cost/test_price_index.py`` fails when
the committed file disagrees with the installed genai-prices (the ``test`` extra pins the
version it was built from). This module imports genai-prices (~0.2 s, +20 MB); the request
path imports it only when the shipped index is for another genai-prices version, to write
one for the installed version into the user's cache directory (:func:`write_index`).

What the index holds, per genai-prices provider: its id, its provider-id match logic, the
providers it falls back to for prices, and its models in genai-prices' order, each with its
match logic and its prices as dated linear (or tiered) coefficients, measured by asking
genai-prices itself to price probe usages (see ``_coefficients.measure``). A model whose price
depends on something the index cannot represent (time of day, an unpriceable unit) is
stored as ``null`` prices: a lookup that lands on it asks genai-prices directly.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import uuid
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import orjson

from ._coefficients import Linear, Tiered, measure
from ._price_index import FORMAT, INDEX_PATH, installed_genai_prices

__all__ = ["build", "dumps", "main", "write_index"]


def _match(logic: Any) -> Any:
    """genai-prices' match clause as JSON: ``["equals", "x"]``, ``["or", [...]]``..."""
    from genai_prices import types as t

    if isinstance(logic, t.ClauseOr):
        return ["or", [_match(c) for c in logic.or_]]
    if isinstance(logic, t.ClauseAnd):
        return ["and", [_match(c) for c in logic.and_]]
    for cls, name in (
        (t.ClauseEquals, "equals"),
        (t.ClauseStartsWith, "starts_with"),
        (t.ClauseEndsWith, "ends_with"),
        (t.ClauseContains, "contains"),
        (t.ClauseRegex, "regex"),
    ):
        if isinstance(logic, cls):
            value = getattr(logic, name)
            # genai-prices lower-cases both sides of every clause but a regex: done here once.
            return [name, value if name == "regex" else value.lower()]
    raise TypeError(f"unknown genai-prices match clause {logic!r}")


def _entry(entry: Linear | Tiered) -> Any:
    def lin(x: Linear) -> list[float]:
        return [x.base, x.input, x.output, x.cache_read, x.cache_write]

    if isinstance(entry, Tiered):
        return {"starts": list(entry.starts), "segments": [lin(s) for s in entry.segments]}
    return lin(entry)


def _prices(model: Any) -> list[list[Any]] | None:
    """``[[start_date or None, entry], ...]`` in genai-prices' order, or ``None``."""
    from genai_prices import types as t

    conditional = (
        [t.ConditionalPrice(prices=model.prices)]
        if isinstance(model.prices, t.ModelPrice)
        else model.prices
    )
    out: list[list[Any]] = []
    for cp in conditional:
        c = cp.constraint
        if c is not None and not isinstance(c, t.StartDateConstraint):
            return None  # time-of-day prices: genai-prices answers these itself
        when = None if c is None else c.start_date
        stamp = datetime.combine(when or date(2000, 1, 1), time(12), tzinfo=UTC)
        try:
            entry = measure(model.get_prices(stamp))
        except Exception:  # a unit our four usage counts cannot express
            return None
        out.append([None if when is None else when.isoformat(), _entry(entry)])
    return out


def build() -> dict[str, Any]:
    """The index of the installed genai-prices' bundled data, as JSON-ready data."""
    import genai_prices
    from genai_prices.data import providers

    version, data = installed_genai_prices()
    index: dict[str, Any] = {
        "format": FORMAT,
        # What lookups compare with (the dist-info folder's name and its RECORD's hash of
        # the data module), so a built index is recognised as current.
        "genai_prices": version or genai_prices.__version__,
        "data": data,
        "providers": [],
    }
    for p in providers:
        index["providers"].append(
            {
                "id": p.id,
                "provider_match": None if p.provider_match is None else _match(p.provider_match),
                "fallbacks": list(p.fallback_model_providers or ()),
                "models": [[m.id, _match(m.match), _prices(m)] for m in p.models],
            }
        )
    return index


def dumps(index: dict[str, Any]) -> bytes:
    """The index file's bytes (stable: a rebuild of the same data is byte-identical).

    JSON lines: first the header (format, version, and per provider its id, provider match
    and fallbacks), then one line of models per provider in the same order, so a lookup
    parses the header and the one provider it needs (~0.2 ms), not the whole file.
    """
    providers = index["providers"]
    lines = [orjson.dumps(p["models"]) + b"\n" for p in providers]
    heads = []
    at = 0
    for p, line in zip(providers, lines, strict=True):
        # Where its models line starts, counted from the end of the header line.
        heads.append({**{k: v for k, v in p.items() if k != "models"}, "at": [at, len(line)]})
        at += len(line)
    body = b"".join(lines)
    head = {
        "format": index["format"],
        "genai_prices": index["genai_prices"],
        "data": index.get("data"),
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "providers": heads,
    }
    return orjson.dumps(head) + b"\n" + body


def write_index(path: Path, mode: int = 0o600) -> int:
    """Build the index of the installed genai-prices and write it to ``path`` atomically (a
    temporary file beside it, flushed to disk, renamed over it): a reader, another process
    included, sees the old file or the whole new one. The temporary file is created before
    building, so a folder that cannot be written fails at once, not after the ~0.5 s build.
    A folder it creates is the user's alone (``0o700``); the file gets ``mode``. Returns
    the size written."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            data = dumps(build())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    """Write the index next to this module (or to the path given)."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncllm.cost._price_build",
        description="Build the compact price index from the installed genai-prices.",
    )
    parser.add_argument("path", nargs="?", type=Path, default=INDEX_PATH, help="where to write")
    args = parser.parse_args(argv)
    size = write_index(args.path, mode=0o644)  # shipped in the package: readable by all
    print(f"wrote {args.path} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
