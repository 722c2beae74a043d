"""What the benchmark scripts share: the simulator subprocess, CPU pinning, timing loops.

Imported as ``from _common import ...``: a script run as ``python benchmarks/bench_x.py``
has ``benchmarks/`` first on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

__all__ = [
    "RESULTS",
    "ROOT",
    "free_port",
    "per_op_us",
    "pin",
    "redis_server",
    "simulator_process",
    "timed_slice",
    "write_json",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(pid: int, cpu: int) -> bool:
    """Pin process ``pid`` (0: this one) to core ``cpu``; False where that is not possible.

    Only on a machine with two cores or more: pinning both sides of a benchmark to the
    single core there is would change nothing but the noise.
    """
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return False
    try:
        os.sched_setaffinity(pid, {cpu})
    except OSError:
        return False
    return True


@contextmanager
def simulator_process(*options: str) -> Iterator[tuple[str, bool]]:
    """``asyncllm simulate --port P *options`` in its own process; yields ``(url, pinned)``.

    The simulator is pinned to core 1 and this process to core 0 (when there are two), so
    the server's work does not land in this process's CPU numbers; ``pinned`` says whether
    both pins took. ``url`` is the server's root (``http://127.0.0.1:P``). The process is
    terminated on exit.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncllm.cli", "simulate", "--port", str(free_port()), *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # the CLI prints its base URL once it listens
        if not url.startswith("http://"):
            raise RuntimeError(f"simulator did not start: {url!r}")
        pinned_sim = pin(proc.pid, 1)
        pinned_self = pin(0, 0)
        yield url, pinned_sim and pinned_self
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def timed_slice(
    call: Callable[..., Awaitable[int]],
    args: tuple[Any, ...],
    *,
    expected: int,
    seconds: float,
    concurrency: int,
    label: str,
) -> tuple[int, float, float]:
    """``concurrency`` workers await ``call(*args)`` back to back for ``seconds``.

    Returns ``(calls, CPU seconds, wall seconds)``; CPU is ``time.process_time()``, after
    a garbage collection so that one slice's garbage is not collected on the next's time.

    Raises:
        RuntimeError: some call returned another size than ``expected`` (``label`` names
            the slice), so the contestants did not all do the same work.
    """
    loop = asyncio.get_running_loop()
    count = wrong = 0
    stop = 0.0

    async def worker() -> None:
        nonlocal count, wrong
        while loop.time() < stop:
            got = await call(*args)
            count += 1
            wrong += got != expected

    gc.collect()
    cpu0, t0 = time.process_time(), time.perf_counter()
    stop = loop.time() + seconds
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    if wrong:
        raise RuntimeError(f"{label}: {wrong}/{count} answers had the wrong size")
    return count, cpu, wall


async def per_op_us(
    fns: dict[str, Callable[[], Awaitable[Any]]],
    n: int,
    rounds: int,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, float]:
    """Median over ``rounds`` of the mean time of ``n`` sequential awaits, in microseconds.

    The functions take turns within each round, so a noisy neighbour slows them alike and
    the ratios stay meaningful on a busy machine. ``clock`` counts nanoseconds: wall time
    by default, ``time.process_time_ns`` for CPU time.
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = clock()
            for _ in range(n):
                await fn()
            samples[name].append((clock() - t0) / n / 1000)
    return {name: statistics.median(v) for name, v in samples.items()}


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway loopback ``redis-server`` (``tests/_redis.py``'s); ``None`` without one."""
    if shutil.which("redis-server") is None:
        yield None
        return
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from _redis import redis_server as tests_redis_server

    with tempfile.TemporaryDirectory() as tmp, tests_redis_server(Path(tmp)) as url:
        yield url


def write_json(path: Path, data: Any) -> None:
    """Write a report as indented JSON, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
