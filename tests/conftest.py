"""Shared fixtures. A network kill switch keeps every test on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from _structlog import leave_structlog_as_found  # noqa: F401 - autouse for every test


def pytest_configure(config: pytest.Config) -> None:
    """Stop looptime from leaking an event loop from sync tests.

    looptime's ``pytest_pyfunc_call`` asks pytest-asyncio's (autouse, session-wide) policy
    for its loop even in sync tests; before the first async test has run, that *creates* a
    loop nobody closes, and its ResourceWarning later fails whichever test the garbage
    collector happens to run in (``filterwarnings = error``). Declaring "no current loop"
    makes ``get_event_loop()`` raise instead, which looptime handles.
    """
    asyncio.set_event_loop(None)
    # A price index built for another genai-prices version goes to a cache directory: keep
    # the tests' (and their subprocesses') out of the user's home.
    os.environ["ASYNCLLM_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


_CACHE_DIR = tempfile.mkdtemp(prefix="asyncllm-test-cache-")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                raise ConnectionRefusedError(
                    f"test tried to reach {host!r}: loopback only"
                ) from None
            return
        if not ip.is_loopback:
            raise ConnectionRefusedError(f"test tried to reach {host}: loopback only")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    yield
