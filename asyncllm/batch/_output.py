"""The output file: what earlier runs left in it, its repair, and appending to it.

Exactly once across kills rests on four rules:

* every record is appended with one unbuffered ``write`` as soon as its request finishes
  (a killed process loses nothing the kernel was given) and fsynced every
  ``fsync_interval`` seconds and at exit (a power cut loses at most that window);
* on start the file is read: the ids it holds are done and are skipped; a torn last line
  (no newline: the process died mid-write) is cut off and kept in ``OUT.torn``, never
  silently dropped; any other unreadable line stops the run (nothing is truncated);
* a side file ``OUT.state.json`` remembers the input's fingerprint; a different input is
  refused unless ``restart``, which *moves* the old output aside (``OUT.<time>.bak``);
* error records of transient failures (``asyncllm.transient``: the provider was down,
  timing out, rate limiting...) are sent again by the next run, and every error record
  with ``retry_errors``: the file is rewritten without them into ``OUT.rewrite`` and
  atomically renamed over the output (``os.replace``, then fsync of the directory): a kill
  at any instant leaves either the old file or the new one, each with one record per id.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson

from ._input import BatchInputError
from ._record import record_cost, record_is_transient
from ._scan import IdSet

__all__ = ["Appender", "OutputState", "prepare_output", "read_output"]

_STATE_VERSION = 1

#: Bytes of queued records past which :meth:`Appender.add` writes them out at once.
FLUSH_BYTES = 1 << 16


@dataclass(slots=True)
class OutputState:
    """What the output already holds.

    Attributes:
        done: custom_ids with a record (not counting error records sent again).
        done_lines: Line numbers of records without a custom_id (unreadable lines).
        records: Records in the file.
        errors: Error records in the file.
        spent_usd: The cost the records report, summed.
        repaired: Bytes of a torn last line that were cut off (kept in ``OUT.torn``).
        resent: Error records removed for their requests to be sent again (transient
            failures, or every error with ``retry_errors``).
    """

    done: IdSet
    done_lines: set[int] = field(default_factory=set)
    records: int = 0
    errors: int = 0
    spent_usd: float = 0.0
    repaired: int = 0
    resent: int = 0


def _send_again(rec: dict[str, Any], retry_errors: bool, retry_transient: bool) -> bool:
    if rec.get("error") is None:
        return False
    return retry_errors or (retry_transient and record_is_transient(rec))


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state.json")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path)


def _repair(out: Path) -> int:
    """Cut a torn last line off, keeping it in ``OUT.torn``; returns the bytes cut."""
    size = out.stat().st_size
    if size == 0:
        return 0
    with out.open("rb+") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        # Walk back to the previous newline.
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                pos = pos - step + nl + 1
                break
            pos -= step
        f.seek(pos)
        torn = f.read()
        with out.with_name(out.name + ".torn").open("ab") as keep:
            keep.write(torn + b"\n")
            keep.flush()
            os.fsync(keep.fileno())
        f.truncate(pos)
        f.flush()
        os.fsync(f.fileno())
    return size - pos


def _read_sync(
    out: Path, exact: bool, retry_errors: bool, retry_transient: bool
) -> tuple[OutputState, float]:
    # When error records are to be sent again, also writes OUT.rewrite without them (the
    # caller renames it over OUT) and returns what the dropped records had cost.
    state = OutputState(IdSet(exact=exact))
    removed = 0.0
    if not out.exists():
        state.done.freeze()
        return state, removed
    keep: Path | None = None
    if retry_errors or (retry_transient and _has_transient(out)):
        keep = out.with_name(out.name + ".rewrite")
    sink = _create_like(keep, out) if keep is not None else None
    try:
        with out.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec: Any = orjson.loads(line)
                except orjson.JSONDecodeError:
                    rec = None
                if not isinstance(rec, dict) or "custom_id" not in rec:
                    raise BatchInputError(
                        "is not a batch output record; refusing to touch this file "
                        "(move it away, or pass another output path)",
                        path=str(out),
                        line=lineno,
                    )
                is_error = rec.get("error") is not None
                cost = record_cost(rec)
                state.spent_usd += cost
                if sink is not None and _send_again(rec, retry_errors, retry_transient):
                    removed += cost
                    state.resent += 1
                    continue
                if sink is not None:
                    sink.write(line)
                state.records += 1
                state.errors += is_error
                cid = rec.get("custom_id")
                if isinstance(cid, str):
                    state.done.add(cid)
                else:
                    extra = rec.get("asyncllm")
                    n = extra.get("line") if isinstance(extra, dict) else None
                    if isinstance(n, int):
                        state.done_lines.add(n)
        if sink is not None and keep is not None:
            sink.flush()
            os.fsync(sink.fileno())
            sink.close()
            sink = None
    finally:
        if sink is not None:
            sink.close()
            if keep is not None:
                keep.unlink(missing_ok=True)
    state.done.freeze()
    return state, removed


def _create_like(path: Path, like: Path) -> Any:
    """A new file for writing with ``like``'s permissions (and group, where allowed): the
    rewrite replaces the output and must not widen who may read the answers."""
    st = like.stat()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, st.st_mode & 0o7777)
        if hasattr(os, "fchown"):
            with contextlib.suppress(OSError):  # not a member of that group: keep ours
                os.fchown(fd, -1, st.st_gid)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def _has_transient(out: Path) -> bool:
    """Whether any record of ``out`` is a transient failure's (a cheap scan: the file is
    rewritten only then)."""
    with out.open("rb") as f:
        for line in f:
            if b'"transient"' not in line:
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict) and record_is_transient(rec):
                return True
    return False


def read_output(
    path: str | Path,
    *,
    exact_ids: bool = False,
    retry_errors: bool = False,
    retry_transient: bool = True,
) -> OutputState:
    """Read what an output holds without changing it (for ``--dry-run`` and reports): the
    error records a run would send again (see :func:`prepare_output`) are not done.

    A torn last line is ignored here (it is cut off when a run starts).
    """
    out = Path(path)
    state = OutputState(IdSet(exact=exact_ids))
    if out.exists():
        with out.open("rb") as f:
            for line in f:
                try:
                    rec = orjson.loads(line) if line.endswith(b"\n") else None
                except orjson.JSONDecodeError:
                    rec = None
                if not isinstance(rec, dict):
                    continue
                state.spent_usd += record_cost(rec)
                if _send_again(rec, retry_errors, retry_transient):
                    state.resent += 1
                    continue
                state.records += 1
                state.errors += rec.get("error") is not None
                cid = rec.get("custom_id")
                if isinstance(cid, str):
                    state.done.add(cid)
    state.spent_usd += _retired(_state_path(out))
    state.done.freeze()
    return state


def _retired(state_path: Path) -> float:
    try:
        saved = orjson.loads(state_path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return 0.0
    value = saved.get("retired_usd", 0.0) if isinstance(saved, dict) else 0.0
    return float(value) if isinstance(value, (int, float)) else 0.0


def _prepare_sync(
    out: Path,
    fingerprint: str | None,
    input_name: str,
    *,
    restart: bool,
    retry_errors: bool,
    retry_transient: bool,
    exact_ids: bool,
) -> OutputState:
    state_path = _state_path(out)
    has_records = out.exists() and out.stat().st_size > 0
    saved: dict[str, Any] | None = None
    if state_path.exists():
        try:
            saved = orjson.loads(state_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            saved = None
    stale = has_records and (
        saved is None or (fingerprint is not None and saved.get("fingerprint") != fingerprint)
    )
    if stale and not restart:
        why = (
            f"was written for a different input (its fingerprint is in {state_path.name})"
            if saved is not None
            else f"has records but no {state_path.name}, so it may belong to another batch"
        )
        raise BatchInputError(
            f"{why}; rerun with --restart to move it aside and start over", path=str(out)
        )
    if restart and (has_records or state_path.exists()):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        n = 0
        while out.with_name(f"{out.name}.{stamp}{'-' + str(n) if n else ''}.bak").exists():
            n += 1  # two restarts in one second: never replace an earlier backup
        stamp += f"-{n}" if n else ""
        if out.exists():
            os.replace(out, out.with_name(f"{out.name}.{stamp}.bak"))
        if state_path.exists():
            os.replace(state_path, state_path.with_name(f"{state_path.name}.{stamp}.bak"))
        _fsync_dir(out)
    same_input = saved is not None and saved.get("fingerprint") == fingerprint
    if restart or saved is None or (not has_records and not same_input):
        # A new batch (or an empty output left by another input): remember this input.
        # The spend of dropped error records is kept while the input stays the same.
        retired = float(saved.get("retired_usd", 0.0)) if saved and same_input else 0.0
        saved = {
            "version": _STATE_VERSION,
            "input": input_name,
            "fingerprint": fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "retired_usd": 0.0 if restart else retired,
        }
        _write_atomic(state_path, orjson.dumps(saved, option=orjson.OPT_INDENT_2))
    rewrite = out.with_name(out.name + ".rewrite")
    rewrite.unlink(missing_ok=True)
    repaired = _repair(out) if out.exists() else 0
    state, removed = _read_sync(out, exact_ids, retry_errors, retry_transient)
    if rewrite.exists():
        # The spend of the dropped error records is kept in the state file first: a kill
        # between the two steps counts it twice (safe for a budget), never zero times.
        saved["retired_usd"] = _retired(state_path) + removed
        _write_atomic(state_path, orjson.dumps(saved, option=orjson.OPT_INDENT_2))
        os.replace(rewrite, out)
        _fsync_dir(out)
    state.spent_usd = state.spent_usd - removed + _retired(state_path)
    state.repaired = repaired
    return state


async def prepare_output(
    path: str | Path,
    *,
    fingerprint: str | None,
    input_name: str,
    restart: bool = False,
    retry_errors: bool = False,
    retry_transient: bool = True,
    exact_ids: bool = False,
) -> OutputState:
    """Get an output ready for a run (in a worker thread): check it belongs to this input,
    move it aside on ``restart``, repair a torn tail, drop the error records whose requests
    are sent again (transient failures unless not ``retry_transient``; every one with
    ``retry_errors``), and read which ids are done.

    Raises:
        BatchInputError: the output belongs to another input (without ``restart``), or
            holds a line that is not a record.
    """
    out = Path(path)
    try:
        return await anyio.to_thread.run_sync(
            lambda: _prepare_sync(
                out,
                fingerprint,
                input_name,
                restart=restart,
                retry_errors=retry_errors,
                retry_transient=retry_transient,
                exact_ids=exact_ids,
            )
        )
    except OSError as exc:
        raise BatchInputError(f"cannot use the output: {exc}", path=str(out)) from exc


class Appender:
    """Appends records with unbuffered writes; fsyncs every ``fsync_interval``.

    :meth:`write` appends one record at once. :meth:`add` queues one and :meth:`flush`
    appends all queued in one ``write``: the runner queues the records of every answer that
    is already there and flushes before it waits for the next one, so a record never waits
    on the network, and a burst costs one system call. :meth:`sync` and :meth:`aclose`
    flush first.
    """

    def __init__(self, path: str | Path, *, fsync_interval: float = 1.0) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._interval = fsync_interval
        self._last_sync = time.monotonic()
        self._dirty = False
        self.syncing = False
        self.written = 0
        self._buffer: list[bytes] = []
        self._buffered = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (the kernel has it, and any :meth:`add`-ed before it, when
        this returns)."""
        self._buffer.append(orjson.dumps(record))
        self.flush()

    def add(self, record: dict[str, Any]) -> None:
        """Queue one record for the next :meth:`flush`, which the caller makes before it
        awaits anything (so records of answers that arrived together go in one ``write``).
        Flushes by itself past :data:`FLUSH_BYTES`."""
        data = orjson.dumps(record)
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append the queued records with one unbuffered write (the kernel has them when
        this returns)."""
        if not self._buffer:
            return
        count = len(self._buffer)
        self._buffer.append(b"")
        data = memoryview(b"\n".join(self._buffer))
        self._buffer.clear()
        self._buffered = 0
        while data:
            n = os.write(self._fd, data)
            data = data[n:]
        self._dirty = True
        self.written += count

    def sync_due(self) -> bool:
        """Whether ``fsync_interval`` has passed since the last fsync of written records."""
        return (
            self._dirty or bool(self._buffer)
        ) and time.monotonic() - self._last_sync >= self._interval

    async def maybe_sync(self) -> None:
        """fsync (in a worker thread) when ``fsync_interval`` has passed since the last."""
        if self.sync_due():
            await self.sync()

    async def sync(self) -> None:
        """fsync now, in a worker thread (shielded: a cancelled run still syncs what it
        wrote). Appending goes on meanwhile; the runner starts it in the background."""
        self.flush()  # what is queued goes to the kernel first
        with anyio.CancelScope(shield=True):
            self.syncing = True
            self._dirty = False
            self._last_sync = time.monotonic()
            try:
                await anyio.to_thread.run_sync(os.fsync, self._fd)
            finally:
                self.syncing = False

    async def aclose(self) -> None:
        """fsync and close."""
        if self._fd < 0:
            return
        try:
            await self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1
