"""The output file: reading what earlier runs left, repairs, and the --retry-errors rewrite."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from asyncllm.batch import BatchInputError, read_output
from asyncllm.batch._output import OutputState, prepare_output


def _rec(
    cid: str, *, error: bool = False, cost: float = 0.001, transient: bool | None = None
) -> bytes:
    extra: dict[str, object] = {"line": 1, "cost_usd": cost}
    if transient is not None:
        extra["transient"] = transient
    rec = {
        "id": "batch_req_x",
        "custom_id": cid,
        "response": None if error else {"status_code": 200, "body": {}},
        "error": {"code": "server_error", "message": "boom"} if error else None,
        "asyncllm": extra,
    }
    return orjson.dumps(rec) + b"\n"


async def _start(out: Path) -> None:
    await prepare_output(out, fingerprint="f1", input_name="in.jsonl")


async def test_retry_errors_rewrite_keeps_one_record_per_id_and_the_spend(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _start(out)
    out.write_bytes(_rec("a") + _rec("b", error=True, cost=0.5) + _rec("c"))
    state = await prepare_output(out, fingerprint="f1", input_name="in", retry_errors=True)
    assert "a" in state.done and "c" in state.done and "b" not in state.done
    assert out.read_bytes() == _rec("a") + _rec("c")
    assert state.spent_usd == pytest.approx(0.502), "the dropped record's cost still counts"
    again = await prepare_output(out, fingerprint="f1", input_name="in")
    assert again.spent_usd == pytest.approx(0.502)
    assert read_output(out).spent_usd == pytest.approx(0.502)
    assert not (tmp_path / "out.jsonl.rewrite").exists()


async def test_a_rewrite_left_by_a_kill_is_discarded(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _start(out)
    out.write_bytes(_rec("a") + _rec("b"))
    # Killed while writing OUT.rewrite: the output itself was never replaced.
    (tmp_path / "out.jsonl.rewrite").write_bytes(_rec("a")[:10])
    state = await prepare_output(out, fingerprint="f1", input_name="in")
    assert len(state.done) == 2 and out.read_bytes() == _rec("a") + _rec("b")
    assert not (tmp_path / "out.jsonl.rewrite").exists()


async def test_torn_tail_is_cut_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _start(out)
    out.write_bytes(_rec("a") + _rec("b")[:25])
    state = await prepare_output(out, fingerprint="f1", input_name="in")
    assert state.repaired == 25 and "b" not in state.done and "a" in state.done
    assert out.read_bytes() == _rec("a")
    assert (tmp_path / "out.jsonl.torn").read_bytes() == _rec("b")[:25] + b"\n"


async def test_a_bad_line_inside_the_output_is_refused_not_truncated(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _start(out)
    content = _rec("a") + b"garbage\n" + _rec("b")
    out.write_bytes(content)
    with pytest.raises(BatchInputError, match=r"out\.jsonl:2: is not a batch output record"):
        await prepare_output(out, fingerprint="f1", input_name="in")
    assert out.read_bytes() == content


async def test_an_empty_output_takes_the_new_inputs_fingerprint(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await prepare_output(out, fingerprint="old", input_name="in")
    # Nothing was written for the old input; a different input may now use this output...
    await prepare_output(out, fingerprint="new", input_name="in")
    out.write_bytes(_rec("a"))
    # ...and its own rerun is accepted, while the old input is now refused.
    state = await prepare_output(out, fingerprint="new", input_name="in")
    assert "a" in state.done
    with pytest.raises(BatchInputError, match="different input"):
        await prepare_output(out, fingerprint="old", input_name="in")


def _done(state: OutputState) -> str:
    return "".join(c for c in "abcd" if c in state.done)


async def test_a_rerun_sends_transient_failures_again_and_keeps_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _start(out)
    out.write_bytes(
        _rec("a")
        + _rec("b", error=True, cost=0.25, transient=True)  # the provider was down
        + _rec("c", error=True, transient=False)  # a bad request: its record is its answer
        + _rec("d", error=True)  # written before records said: kept, as it was
    )
    # A dry run counts what a run would send, and changes nothing.
    before = out.read_bytes()
    seen = read_output(out)
    assert _done(seen) == "acd" and seen.resent == 1
    assert seen.spent_usd == pytest.approx(0.253)
    kept = read_output(out, retry_transient=False)
    assert _done(kept) == "abcd" and kept.resent == 0
    assert out.read_bytes() == before
    # --keep-errors: nothing is sent again.
    state = await prepare_output(out, fingerprint="f1", input_name="in", retry_transient=False)
    assert _done(state) == "abcd" and out.read_bytes() == before
    # By default the transient failure's record goes (its spend stays counted), atomically.
    state = await prepare_output(out, fingerprint="f1", input_name="in")
    assert _done(state) == "acd" and state.resent == 1
    assert out.read_bytes() == _rec("a") + _rec("c", error=True, transient=False) + _rec(
        "d", error=True
    )
    assert state.spent_usd == pytest.approx(0.253)
    again = await prepare_output(out, fingerprint="f1", input_name="in")
    assert again.resent == 0 and again.spent_usd == pytest.approx(0.253)
    assert not (tmp_path / "out.jsonl.rewrite").exists()


async def test_the_rewritten_output_keeps_its_permissions(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _start(out)
    out.write_bytes(_rec("a") + _rec("b", error=True, transient=True))
    out.chmod(0o600)  # answers only the owner may read
    state = await prepare_output(out, fingerprint="f1", input_name="in")
    assert state.resent == 1 and out.read_bytes() == _rec("a")
    assert out.stat().st_mode & 0o777 == 0o600


async def test_an_output_without_transient_failures_is_not_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _start(out)
    out.write_bytes(_rec("a") + _rec("c", error=True, transient=False))
    inode = out.stat().st_ino
    state = await prepare_output(out, fingerprint="f1", input_name="in")
    assert state.resent == 0 and out.stat().st_ino == inode
