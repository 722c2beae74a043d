"""``asyncllm run`` (the main job) as a real subprocess against the simulator: bad and
duplicate lines, budget stop and resume, --retry-errors, --dry-run, --ordered, and the
README's main command on the embedded simulator."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "batch"))

from _batchtest import env, records, run, run_args, write_config, write_input

from asyncllm.batch import (
    EXIT_BAD_INPUT,
    EXIT_BUDGET,
    EXIT_DONE,
    EXIT_ERRORS,
)
from asyncllm.testing import Fault, Simulator

N = 60


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(latency=0.005) as s:
        yield s


def _one_per_id(out: Path, ids: list[str]) -> list[dict[str, object]]:
    recs = records(out)
    got = [r["custom_id"] for r in recs]
    assert len(got) == len(set(got)) and sorted(got) == sorted(ids)
    return recs


async def test_bad_lines_become_error_records_and_the_run_goes_on(
    sim: Simulator, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.toml", sim)
    inp = tmp_path / "in.jsonl"
    write_input(inp, 6)
    good = inp.read_bytes().splitlines()
    bad = [
        b"{not json",
        b'{"custom_id": "x1", "prompt": "p", "logit_bias": {}}',
        b"",
        b'{"custom_id": "x2", "method": "POST", "url": "http://169.254.169.254/v1/chat/'
        b'completions", "body": {"messages": [{"role": "user", "content": "p"}]}}',
        b'{"custom_id": "x3", "prompt": "p", "model": "not-configured"}',
    ]
    inp.write_bytes(b"\n".join(good[:3] + bad + good[3:]) + b"\n")
    out = tmp_path / "out.jsonl"
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_ERRORS, err
    recs = records(out)
    assert len(recs) == 6 + 4, "one record per non-blank line"
    errors = {r["asyncllm"]["line"]: r["error"] for r in recs if r["error"] is not None}
    assert {n: e["code"] for n, e in errors.items()} == {
        4: "invalid_json",
        5: "unknown_parameter",
        7: "invalid_url",
        8: "model_not_configured",
    }
    assert errors[5]["message"].startswith("line 5:") and "logit_bias" in errors[5]["message"]
    assert sim.stats.received == 6, "bad lines are never sent; a line's url is not a host"
    # A rerun sends nothing and writes nothing: every line has its record.
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_ERRORS and len(records(out)) == 10 and sim.stats.received == 6


async def test_duplicate_ids_are_refused_up_front_naming_both_lines(
    sim: Simulator, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.toml", sim)
    inp = tmp_path / "in.jsonl"
    write_input(inp, 5)
    with inp.open("ab") as f:
        f.write(b'{"custom_id": "req-00001", "prompt": "again"}\n')
    out = tmp_path / "out.jsonl"
    code, err = await run(run_args(cfg, inp, out))
    assert code == EXIT_BAD_INPUT
    assert "duplicate custom_id 'req-00001' on lines 2 and 6" in err
    assert sim.stats.received == 0 and not out.exists()


async def test_budget_stops_cleanly_and_a_larger_budget_finishes(
    sim: Simulator, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.toml", sim, price=True)
    inp = tmp_path / "in.jsonl"
    ids = write_input(inp, N)
    out = tmp_path / "out.jsonl"
    args = run_args(cfg, inp, out, "--quiet")
    code, err = await run([*args, "--budget", "0.3"])
    assert code == EXIT_BUDGET, err
    first = records(out)
    assert 0 < len(first) < N
    assert all(r["error"] is None for r in first), "refused requests get no record"
    assert f"{len(first)} done, {N - len(first)} pending, $" in err and "of $0.3000" in err
    assert len(err.splitlines()) < 40, "no flood of per-request warnings"
    spent = sum(r["asyncllm"]["cost_usd"] for r in first)
    assert spent <= 0.3
    # The same budget again: what the first run spent counts, so only what is left of it
    # (real costs settle below the worst cases reserved) is spent, not a second $0.30.
    sent = sim.stats.received
    code, err = await run([*args, "--budget", "0.3"])
    assert code == EXIT_BUDGET, err
    assert sim.stats.received - sent <= len(first) // 4
    assert sum(r["asyncllm"]["cost_usd"] for r in records(out)) <= 0.3 + 1e-9
    code, err = await run([*args, "--budget", "100"])
    assert code == EXIT_DONE, err
    assert f"{N} done, 0 pending" in err
    _one_per_id(out, ids)


async def test_the_budget_is_used_until_less_than_one_request_is_left(
    sim: Simulator, tmp_path: Path
) -> None:
    # Requests in flight reserve their worst case, far above what they cost. A refusal
    # while they hold it is "not yet": the batch goes on until what is left cannot fit one
    # request with nothing of its own in flight (it stopped near half the budget before).
    cfg = write_config(tmp_path / "c.toml", sim, price=True)
    inp = tmp_path / "in.jsonl"
    write_input(inp, N)
    out = tmp_path / "out.jsonl"
    proc = await anyio.run_process(run_args(cfg, inp, out, "--dry-run"), check=False, env=env())
    said = proc.stdout.decode()
    per_request = float(said.split("worst case $")[1].split()[0]) / N
    budget = 0.3
    code, err = await run(run_args(cfg, inp, out, "--quiet", "--budget", str(budget)))
    assert code == EXIT_BUDGET, err
    recs = records(out)
    spent = sum(r["asyncllm"]["cost_usd"] for r in recs)
    assert spent <= budget and all(r["error"] is None for r in recs)
    assert budget - spent < 1.5 * per_request, (spent, per_request, len(recs))


async def test_dry_run_counts_and_prices_without_sending(sim: Simulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", sim, price=True)
    inp = tmp_path / "in.jsonl"
    write_input(inp, N)
    proc = await anyio.run_process(
        run_args(cfg, inp, tmp_path / "out.jsonl", "--dry-run"), check=False, env=env()
    )
    assert proc.returncode == EXIT_DONE, proc.stderr
    said = proc.stdout.decode()
    assert f"{N} requests, 0 already done, {N} to send" in said and "worst case $" in said
    worst = float(said.split("worst case $")[1].split()[0])
    # Each request: under 40 input tokens and 4 output tokens at $1000 a million.
    assert 4 * 0.001 * N < worst < 60 * 0.001 * N
    assert sim.stats.received == 0 and not (tmp_path / "out.jsonl").exists()


async def test_a_dry_run_exits_as_the_run_would_with_bad_lines(
    sim: Simulator, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.toml", sim)
    inp = tmp_path / "in.jsonl"
    write_input(inp, 3)
    inp.write_bytes(inp.read_bytes() + b"{not json\n")
    out = tmp_path / "out.jsonl"
    proc = await anyio.run_process(run_args(cfg, inp, out, "--dry-run"), check=False, env=env())
    assert proc.returncode == EXIT_ERRORS, proc.stderr
    assert "1 bad line;" in proc.stdout.decode() and sim.stats.received == 0
    assert "rerun the same command" not in proc.stderr.decode()  # a dry run resumes nothing
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_ERRORS, err


async def test_a_missing_input_fails_before_anything_starts(tmp_path: Path) -> None:
    # No config: the embedded simulator would start; the error comes first, and alone.
    proc = await anyio.run_process(
        [sys.executable, "-m", "asyncllm.cli", "run", "--input", str(tmp_path / "nope.jsonl")],
        check=False,
        env=env(),
        cwd=tmp_path,
    )
    err = proc.stderr.decode()
    assert proc.returncode == EXIT_BAD_INPUT
    assert "nope.jsonl: cannot read the input: No such file or directory" in err
    assert "simulator" not in err and "rerun" not in err, err
    assert [p async for p in anyio.Path(tmp_path).iterdir()] == []


async def test_retry_errors_leaves_one_record_per_id(sim: Simulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", sim)
    inp = tmp_path / "in.jsonl"
    ids = write_input(inp, N)
    out = tmp_path / "out.jsonl"
    sim.inject(Fault.bad_request(), times=5)
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_ERRORS, err
    failed = [r for r in records(out) if r["error"] is not None]
    assert len(failed) == 5 and all(r["error"]["code"] == "bad_request" for r in failed)
    assert all(r["response"]["status_code"] == 400 for r in failed)
    # A dry run ends as a plain rerun would: the error records are kept, exit 1.
    proc = await anyio.run_process(run_args(cfg, inp, out, "--dry-run"), check=False, env=env())
    assert proc.returncode == EXIT_ERRORS and "5 error records kept" in proc.stdout.decode()
    code, err = await run(run_args(cfg, inp, out, "--quiet", "--retry-errors"))
    assert code == EXIT_DONE, err
    recs = _one_per_id(out, ids)
    assert all(r["error"] is None for r in recs)
    assert sim.stats.received == N + 5


async def test_requests_an_outage_failed_are_sent_again_by_a_rerun(
    sim: Simulator, tmp_path: Path
) -> None:
    # The provider is down for the whole first run: every request gets an error record.
    # Rerunning the same command (what the run says to do) must finish the batch, not
    # report "all done" with nothing answered; a permanent failure stays as recorded.
    cfg = write_config(tmp_path / "c.toml", sim)
    inp = tmp_path / "in.jsonl"
    ids = write_input(inp, 20)
    out = tmp_path / "out.jsonl"
    sim.inject(Fault.unavailable(), times=100_000)
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_ERRORS, err
    recs = _one_per_id(out, ids)
    assert all(r["error"] is not None and r["asyncllm"]["transient"] is True for r in recs)
    assert "rerun the same command to send them again" in err
    # --keep-errors sends nothing; a dry run counts what a plain rerun would send.
    received = sim.stats.received
    code, err = await run(run_args(cfg, inp, out, "--quiet", "--keep-errors"))
    assert code == EXIT_ERRORS and sim.stats.received == received, err
    proc = await anyio.run_process(run_args(cfg, inp, out, "--dry-run"), check=False)
    assert "20 requests, 0 already done, 20 to send" in proc.stdout.decode()
    # The provider is back, but one request is refused for good.
    sim.clear_faults()
    sim.inject(Fault.bad_request(), times=1)
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_ERRORS, err
    assert "sent again 20 request(s) whose earlier record was a transient failure" in err
    recs = _one_per_id(out, ids)
    failed = [r for r in recs if r["error"] is not None]
    assert len(failed) == 1 and failed[0]["asyncllm"]["transient"] is False
    received = sim.stats.received
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_ERRORS and sim.stats.received == received, err  # nothing resent
    _one_per_id(out, ids)


async def test_ordered_writes_in_input_order_with_progress_lines(
    sim: Simulator, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.toml", sim)
    inp = tmp_path / "in.jsonl"
    ids = write_input(inp, N)
    out = tmp_path / "out.jsonl"
    code, err = await run(run_args(cfg, inp, out, "--ordered"))
    assert code == EXIT_DONE, err
    assert [r["custom_id"] for r in records(out)] == ids
    assert "asyncllm run: 0/60 done" in err, "plain progress lines when not a terminal"
    assert "latency" in err and "p95" in err, "the summary table"


def test_main_command_runs_the_sample_batch_on_the_embedded_simulator(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "asyncllm.cli", "run", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == EXIT_DONE, proc.stderr
    assert "embedded simulator" in proc.stderr
    out = tmp_path / "prompts.results.jsonl"
    assert f"output {out}" in proc.stderr, "it says where the results go"
    recs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    sample = Path(__file__).resolve().parents[2] / "examples" / "batch" / "prompts.jsonl"
    n = len(sample.read_bytes().splitlines())
    assert len(recs) == n and f"{n} done, 0 pending" in proc.stderr
    assert {r["custom_id"] for r in recs} == {
        orjson.loads(line)["custom_id"] for line in sample.read_bytes().splitlines()
    }
    assert all(r["error"] is None and r["response"]["body"] for r in recs)


async def test_dry_run_prices_a_line_without_max_tokens_at_the_wire_cap(
    sim: Simulator, tmp_path: Path
) -> None:
    # Anthropic's wire is sent the driver's default_max_tokens; the budget reserves that,
    # so the dry run's worst case must count it too (it counted 4096).
    def worst(cap: int) -> float:
        cfg = tmp_path / f"c{cap}.toml"
        cfg.write_text(
            f'[providers.an]\nspec = "anthropic:claude-t"\nbase_url = "{sim.anthropic_base_url}"\n'
            f"default_max_tokens = {cap}\n"
            "price = { input_per_mtok = 0.0, output_per_mtok = 10.0 }\n"
        )
        import subprocess

        proc = subprocess.run(
            run_args(cfg, inp, tmp_path / "out.jsonl", "--dry-run"),
            capture_output=True, text=True, check=False,
            env={**env(), "ANTHROPIC_API_KEY": "sk-ant-test-loopback-only"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return float(proc.stdout.split("worst case $")[1].split()[0])

    inp = tmp_path / "in.jsonl"
    inp.write_bytes(orjson.dumps({"custom_id": "a", "prompt": "hi"}) + b"\n")
    # One line: each leg the strategy may send is 40,000 output tokens at $10 a million.
    big, small = worst(40000), worst(1000)
    legs = round(big / 0.4)
    assert legs >= 1 and big == pytest.approx(legs * 0.4)
    assert small == pytest.approx(legs * 0.01)
