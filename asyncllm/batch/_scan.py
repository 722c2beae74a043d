"""The pre-pass over an input file, a compact set of custom_ids, and a streaming line reader.

The pre-pass reads the file once, in a worker thread, before anything is sent: it counts
the requests (for progress and ``--dry-run``), fingerprints the bytes (a changed input is
refused on resume) and refuses duplicate ``custom_id`` s naming both line numbers.

Memory: ids are kept as sorted 64-bit hashes in an ``array`` (8 bytes an id), not as
strings; the one thing that grows with the input is that array. The hash is Python's
``hash`` of the string, consistent within the process that builds and queries the set.
Two *different* ids of the input sharing a hash (about one chance in 10^7 for a
million-line file) is detected by the pre-pass, and the set then keeps exact strings.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio
import orjson

from ._input import BatchInputError, custom_id_of, strip_bom

__all__ = ["IdSet", "InputScan", "read_lines", "scan_input"]

_CHUNK = 1 << 20


_RUN = 1 << 16


def sorted_array(values: array[int]) -> array[int]:
    """``values`` sorted, as an array, without ever holding them all as Python ints
    (``sorted()`` of a million-entry array would briefly take ~40 MB): runs of 65,536 are
    sorted one at a time and merged."""
    if len(values) <= _RUN:
        return array("q", sorted(values))
    runs = [array("q", sorted(values[i : i + _RUN])) for i in range(0, len(values), _RUN)]
    out = array("q")
    out.extend(heapq.merge(*runs))
    return out


class IdSet:
    """A set of custom_ids for membership tests, 8 bytes an id once frozen.

    Args:
        exact: Keep the strings themselves (when hashes are known to collide).
    """

    __slots__ = ("_exact", "_hashes", "_sorted", "_strings")

    def __init__(self, *, exact: bool = False) -> None:
        self._exact = exact
        self._hashes = array("q")
        self._strings: set[str] = set()
        self._sorted = True

    def add(self, custom_id: str) -> None:
        """Add an id."""
        if self._exact:
            self._strings.add(custom_id)
        else:
            self._hashes.append(hash(custom_id))
            self._sorted = False

    def freeze(self) -> None:
        """Sort the hashes (done once, after the last ``add``, before lookups)."""
        if not self._sorted:
            self._hashes = sorted_array(self._hashes)
            self._sorted = True

    def __contains__(self, custom_id: object) -> bool:
        if not isinstance(custom_id, str):
            return False
        if self._exact:
            return custom_id in self._strings
        self.freeze()
        h = hash(custom_id)
        i = bisect_left(self._hashes, h)
        return i < len(self._hashes) and self._hashes[i] == h

    def __len__(self) -> int:
        return len(self._strings) if self._exact else len(self._hashes)


@dataclass(slots=True, frozen=True)
class InputScan:
    """What the pre-pass found.

    Attributes:
        requests: Non-blank lines (each gets exactly one record).
        fingerprint: BLAKE2b of the file's bytes.
        size: The file's size in bytes.
        exact_ids: Whether id sets must keep exact strings (a hash collision was seen).
    """

    requests: int
    fingerprint: str
    size: int
    exact_ids: bool = False


def _sorted_duplicates(hashes: array[int]) -> set[int]:
    return {a for a, b in itertools.pairwise(sorted_array(hashes)) if a == b}


def _ids(path: Path) -> Iterable[tuple[int, str]]:
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if lineno == 1:
                line = strip_bom(line)  # type: ignore[assignment]
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            cid = custom_id_of(obj, lineno)
            if cid is not None:
                yield lineno, cid


def _scan_sync(path: Path) -> InputScan:
    digest = hashlib.blake2b(digest_size=20)
    hashes = array("q")
    requests = size = 0
    try:
        with path.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                digest.update(line)
                size += len(line)
                if lineno == 1:
                    line = strip_bom(line)  # type: ignore[assignment]
                if not line.strip():
                    continue
                requests += 1
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                cid = custom_id_of(obj, lineno)
                if cid is not None:
                    hashes.append(hash(cid))
    except OSError as exc:
        raise BatchInputError(f"cannot read the input: {exc.strerror}", path=str(path)) from exc
    suspects = _sorted_duplicates(hashes)
    del hashes
    exact = False
    if suspects:
        # A second pass over only the suspect ids tells duplicates from hash collisions.
        first: dict[str, int] = {}
        for lineno, cid in _ids(path):
            if hash(cid) not in suspects:
                continue
            if cid in first:
                raise BatchInputError(
                    f"duplicate custom_id {cid!r} on lines {first[cid]} and {lineno}; "
                    f"each request needs its own id",
                    path=str(path),
                    line=lineno,
                )
            first[cid] = lineno
        exact = True
    return InputScan(requests, digest.hexdigest(), size, exact)


async def scan_input(path: str | Path) -> InputScan:
    """Pre-pass over an input file, in a worker thread (see the module doc).

    Raises:
        BatchInputError: unreadable file, or a duplicate ``custom_id`` (naming both lines).
    """
    return await anyio.to_thread.run_sync(_scan_sync, Path(path))


async def read_lines(path: str | Path) -> AsyncIterator[tuple[int, bytes]]:
    """``(line number, line)`` of a file, read in 1 MiB chunks in a worker thread."""
    try:
        f = await anyio.open_file(path, "rb")
    except OSError as exc:
        raise BatchInputError(f"cannot read the input: {exc.strerror}", path=str(path)) from exc
    lineno = 0
    tail = b""
    async with f:
        while True:
            chunk = await f.read(_CHUNK)
            if not chunk:
                break
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                lineno += 1
                yield lineno, line
    if tail:
        yield lineno + 1, tail
