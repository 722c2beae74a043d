"""A throwaway ``redis-server`` for tests that need a real Redis (reusable by any area).

Usage from a conftest::

    from _redis import redis_server

    @pytest.fixture(scope="session")
    def redis_url(tmp_path_factory):
        with redis_server(tmp_path_factory.mktemp("redis")) as url:
            yield url

Tests needing it are marked ``@pytest.mark.redis``. Without the binary they SKIP with the
reason, except under ``CI`` (any non-empty value other than 0/false), where a missing
``redis-server`` fails the test: CI must install it (``apt-get install redis-server``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["free_port", "redis_server", "redis_server_binary"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def redis_server_binary() -> str:
    """Path of ``redis-server``; skips the test (or fails it under CI) when missing."""
    path = shutil.which("redis-server")
    if path is None:
        msg = "redis-server is not installed (apt-get install redis-server)"
        if _in_ci():
            pytest.fail(f"{msg}; required when CI is set", pytrace=False)
        pytest.skip(msg)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Run ``redis-server`` on a free loopback port in ``workdir``; yield its URL.

    No persistence (``--save "" --appendonly no``). The server is killed on exit.
    """
    binary = redis_server_binary()
    last_error = ""
    for _ in range(3):  # the port may be taken between choosing and binding it
        port = free_port()
        log = workdir / f"redis-{port}.log"
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + startup_timeout
        while proc.poll() is None and time.monotonic() < deadline and not _ping(port):
            time.sleep(0.02)
        if proc.poll() is None and _ping(port):
            try:
                yield f"redis://127.0.0.1:{port}/0"
            finally:
                proc.kill()
                proc.wait(timeout=10)
            return
        proc.kill()
        proc.wait(timeout=10)
        last_error = log.read_text() if log.exists() else "no log"
    raise RuntimeError(f"redis-server did not start: {last_error[-2000:]}")
