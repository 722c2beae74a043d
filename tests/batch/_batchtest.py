"""Helpers of the batch tests: inputs, configs, subprocess runs of ``asyncllm run``, checks."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson

from asyncllm.testing import Simulator


def env() -> dict[str, str]:
    """The environment of a child run: no real API keys, ever."""
    return {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}


def write_input(path: Path, n: int, *, shapes: bool = True) -> list[str]:
    """``n`` requests with unique prompts, cycling through the three line shapes."""
    ids = []
    with path.open("wb") as f:
        for i in range(n):
            cid = f"req-{i:05d}"
            ids.append(cid)
            prompt = f"Tell me fact number {i} about otters"
            kind = i % 3 if shapes else 0
            if kind == 0:
                line: dict[str, Any] = {"custom_id": cid, "prompt": prompt, "max_tokens": 4}
            elif kind == 1:
                line = {
                    "custom_id": cid,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": prompt}], "max_tokens": 4},
                }
            else:
                line = {
                    "custom_id": cid,
                    "params": {"messages": [{"role": "user", "content": prompt}], "max_tokens": 4},
                }
            f.write(orjson.dumps(line) + b"\n")
    return ids


def write_config(path: Path, sim: Simulator, *, extra: str = "", price: bool = False) -> Path:
    price_line = "price = { input_per_mtok = 1000.0, output_per_mtok = 1000.0 }\n" if price else ""
    path.write_text(
        f"""
[client]
concurrency = 8

[batch]
grace_period = 5
fsync_interval = 0.2

[providers.sim]
spec = "openai_compatible:m1"
base_url = "{sim.openai_base_url}"
{price_line}
{extra}
"""
    )
    return path


def run_args(cfg: Path, inp: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "asyncllm.cli",
        "run",
        "--config",
        str(cfg),
        "--input",
        str(inp),
        "--output",
        str(out),
        "--progress-interval",
        "0.2",
        *extra,
    ]


async def run(args: list[str]) -> tuple[int, str]:
    proc = await anyio.run_process(args, check=False, env=env())
    return proc.returncode, proc.stderr.decode()


def records(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]


def text_of(record: dict[str, Any]) -> str:
    body = record["response"]["body"]
    if body.get("type") == "message":
        return "".join(c["text"] for c in body["content"] if c["type"] == "text")
    return str(body["choices"][0]["message"]["content"])


async def lines_in(out: Path) -> int:
    try:
        return (await anyio.Path(out).read_bytes()).count(b"\n")
    except FileNotFoundError:
        return 0


async def run_and_signal(
    args: list[str], out: Path, sig: signal.Signals, *, after_records: int, delay: float
) -> int:
    """Start a run, wait until ``after_records`` records are on disk plus ``delay`` s, then
    send ``sig``; returns the exit code."""
    async with await anyio.open_process(args, env=env()) as proc:
        with anyio.fail_after(30):
            while await lines_in(out) < after_records and proc.returncode is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)  # polling a file another process writes
        await anyio.sleep(delay)
        if proc.returncode is None:
            proc.send_signal(sig)
        with anyio.fail_after(30):
            return await proc.wait()


def check_exactly_once(out: Path, ids: list[str], reference: dict[str, str]) -> None:
    """One record per id, none extra, each with the answer to its own prompt."""
    recs = records(out)
    got = [r["custom_id"] for r in recs]
    assert len(got) == len(set(got)), "a custom_id has two records"
    assert sorted(got) == sorted(ids)
    for r in recs:
        assert r["error"] is None, r
        assert text_of(r) == reference[r["custom_id"]], r["custom_id"]
        assert r["asyncllm"]["line"] == ids.index(r["custom_id"]) + 1
