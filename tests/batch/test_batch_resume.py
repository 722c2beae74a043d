"""Exactly once across kills: ``asyncllm run`` as a real subprocess against the simulator,
killed (SIGKILL, SIGINT, SIGTERM) at random points and rerun."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from _batchtest import (
    check_exactly_once,
    env,
    records,
    run,
    run_and_signal,
    run_args,
    text_of,
    write_config,
    write_input,
)

from asyncllm.batch import EXIT_BAD_INPUT, EXIT_DONE, EXIT_INTERRUPTED, run_batch
from asyncllm.testing import Simulator

N = 240
_REFERENCE: dict[str, str] = {}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # 8 in flight at ~25 ms each: a 240-line batch takes about a second, long enough to
    # be killed in the middle many times over.
    async with Simulator(latency=0.025) as s:
        yield s


@pytest.fixture
async def setup(sim: Simulator, tmp_path: Path) -> tuple[Path, Path, list[str], dict[str, str]]:
    cfg = write_config(tmp_path / "c.toml", sim)
    inp = tmp_path / "in.jsonl"
    ids = write_input(inp, N)
    if not _REFERENCE:
        # The simulator's answer is a function of the prompt: one uninterrupted in-process
        # run gives every prompt's own answer, shared by the tests of this module.
        ref = tmp_path / "reference.jsonl"
        summary = await run_batch(cfg, inp, ref)
        assert summary.status == "done"
        _REFERENCE.update({r["custom_id"]: text_of(r) for r in records(ref)})
        assert len(set(_REFERENCE.values())) > N // 2, "prompts get distinct answers"
    return cfg, inp, ids, dict(_REFERENCE)


async def test_sigkill_at_random_points_then_rerun(
    setup: tuple[Path, Path, list[str], dict[str, str]], tmp_path: Path, sim: Simulator
) -> None:
    cfg, inp, ids, reference = setup
    out = tmp_path / "out.jsonl"
    args = run_args(cfg, inp, out, "--quiet")
    rng = random.Random(11)
    before = sim.stats.received
    seen = 0
    for _ in range(3):
        at = seen + rng.randrange(5, 50)
        code = await run_and_signal(
            args, out, signal.SIGKILL, after_records=at, delay=rng.uniform(0, 0.05)
        )
        assert code == -signal.SIGKILL
        seen = len(records(out))
        assert seen < N, "killed before the end"
        got = [r["custom_id"] for r in records(out)]
        assert len(got) == len(set(got)), "no custom_id twice, even between runs"
    code, err = await run(args)
    assert code == EXIT_DONE, err
    check_exactly_once(out, ids, reference)
    # Only what was in flight at each kill was sent again: 3 kills, 8 in flight each.
    assert sim.stats.received - before <= N + 3 * 8 + 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_interrupt_stops_gracefully_and_resumes(
    setup: tuple[Path, Path, list[str], dict[str, str]],
    tmp_path: Path,
    sim: Simulator,
    sig: signal.Signals,
) -> None:
    cfg, inp, ids, reference = setup
    out = tmp_path / "out.jsonl"
    args = run_args(cfg, inp, out)
    before = sim.stats.received
    code = await run_and_signal(args, out, sig, after_records=30, delay=0.01)
    assert code == EXIT_INTERRUPTED
    partial = records(out)
    assert 30 <= len(partial) < N
    # Graceful: everything that was sent got its record (in-flight requests finished).
    assert sim.stats.received - before == len(partial)
    code, err = await run(args)
    assert code == EXIT_DONE, err
    assert "240 done, 0 pending" in err
    check_exactly_once(out, ids, reference)
    assert sim.stats.received - before == N, "nothing was sent twice"


async def test_torn_last_line_is_repaired(
    setup: tuple[Path, Path, list[str], dict[str, str]], tmp_path: Path
) -> None:
    cfg, inp, ids, reference = setup
    out = tmp_path / "out.jsonl"
    args = run_args(cfg, inp, out, "--quiet")
    code = await run_and_signal(args, out, signal.SIGKILL, after_records=40, delay=0)
    assert code == -signal.SIGKILL
    whole = out.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    # A kill mid-write (or a crash of the machine) leaves half a record at the end.
    torn = whole[: len(whole) - len(last) - 1] + b"\n" + last[: len(last) // 2]
    out.write_bytes(torn)
    code, err = await run(args)
    assert code == EXIT_DONE, err
    check_exactly_once(out, ids, reference)
    kept = (tmp_path / "out.jsonl.torn").read_bytes()
    assert kept.strip() == last[: len(last) // 2], "the torn fragment is kept, not dropped"
    assert "repaired" in err


async def test_changed_input_is_refused_unless_restart(
    setup: tuple[Path, Path, list[str], dict[str, str]], tmp_path: Path, sim: Simulator
) -> None:
    cfg, inp, _, _ = setup
    out = tmp_path / "out.jsonl"
    args = run_args(cfg, inp, out, "--quiet")
    code, err = await run(args)
    assert code == EXIT_DONE, err
    first = out.read_bytes()
    with inp.open("ab") as f:
        f.write(b'{"custom_id": "new", "prompt": "another"}\n')
    before = sim.stats.received
    code, err = await run(args)
    assert code == EXIT_BAD_INPUT
    assert "different input" in err and "--restart" in err
    assert out.read_bytes() == first, "the paid-for output is untouched"
    assert sim.stats.received == before, "nothing was sent"
    code, err = await run([*args, "--restart"])
    assert code == EXIT_DONE, err
    assert len(records(out)) == N + 1
    moved = [p async for p in anyio.Path(tmp_path).glob("out.jsonl.2*.bak")]
    assert len(moved) == 1 and await moved[0].read_bytes() == first, "the old output is kept aside"


async def test_output_of_another_batch_is_not_touched(
    setup: tuple[Path, Path, list[str], dict[str, str]], tmp_path: Path
) -> None:
    cfg, inp, _, _ = setup
    out = tmp_path / "precious.jsonl"
    out.write_bytes(b'{"something": "else"}\n')
    code, err = await run(run_args(cfg, inp, out, "--quiet"))
    assert code == EXIT_BAD_INPUT and "--restart" in err
    assert out.read_bytes() == b'{"something": "else"}\n'


async def test_a_second_interrupt_cancels_the_grace_period(tmp_path: Path) -> None:
    """First Ctrl-C: stop admitting, give in-flight requests the grace period (here 30 s
    against a 3 s server); a second one cancels them now. Answered records are flushed,
    the cancelled ones get none, and a rerun sends exactly those."""
    async with Simulator(latency=3.0) as slow:
        cfg = write_config(tmp_path / "c.toml", slow, extra="")
        cfg.write_text(cfg.read_text().replace("grace_period = 5", "grace_period = 30"))
        inp = tmp_path / "in.jsonl"
        ids = write_input(inp, 20)
        out = tmp_path / "out.jsonl"
        args = run_args(cfg, inp, out)
        async with await anyio.open_process(args, env=env()) as proc:
            with anyio.fail_after(20):
                while slow.stats.in_flight < 8:  # noqa: ASYNC110 - the server's own counter
                    await anyio.sleep(0.01)
            started = anyio.current_time()
            proc.send_signal(signal.SIGINT)
            await anyio.sleep(0.3)
            assert proc.returncode is None, "the first Ctrl-C waits for in-flight requests"
            proc.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                code = await proc.wait()
            elapsed = anyio.current_time() - started
            err = (await proc.stderr.receive()).decode() if proc.stderr else ""
        assert code == EXIT_INTERRUPTED, err
        assert elapsed < 3.0, "did not wait out the requests (3 s) nor the grace (30 s)"
        assert records(out) == []  # nothing had been answered yet
        stats = await slow.wait_for(lambda st: st.in_flight == 0, timeout=5)
        assert stats.disconnected >= 8  # the in-flight requests were cancelled upstream
        code, err = await run(args)
    assert code == EXIT_DONE, err
    got = sorted(r["custom_id"] for r in records(out))
    assert got == sorted(ids)
