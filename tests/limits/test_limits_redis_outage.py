"""RedisRateLimiter when its Redis freezes (SIGSTOP), dies or comes back.

Each test runs its own redis-server (it is stopped, killed and restarted), on a fixed port
so a restart comes back at the same URL. The defects pinned here: callers held past their
deadline by a frozen Redis, the k-th queued caller waiting k socket timeouts, and a shared
concurrency slot still held after recovery (a late grant, or a release that never reached
Redis).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
from _redis import free_port, redis_server_binary

from asyncllm.limits import LimiterUnavailable, RedisRateLimiter

pytestmark = pytest.mark.redis


class Server:
    """One redis-server on a fixed loopback port that a test can freeze, kill and restart."""

    def __init__(self, workdir: Path) -> None:
        self.binary = redis_server_binary()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            with suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.kill()


@pytest.fixture
async def limiters(server: Server) -> AsyncIterator[list[RedisRateLimiter]]:
    made: list[RedisRateLimiter] = []
    yield made
    server.thaw() if server.proc is not None else None
    for lim in made:
        with anyio.move_on_after(3, shield=True):
            await lim.aclose()


def make(server: Server, made: list[RedisRateLimiter], key: str, **kw: Any) -> RedisRateLimiter:
    lim = RedisRateLimiter(url=server.url, key=key, **kw)
    made.append(lim)
    return lim


async def _take(lim: RedisRateLimiter) -> None:
    async with lim.acquire(1, model="m"):
        pass


async def test_frozen_redis_never_holds_a_caller_past_its_deadline(
    server: Server, limiters: list[RedisRateLimiter]
) -> None:
    lim = make(server, limiters, f"k-{uuid.uuid4().hex}", rpm=100_000, max_concurrency=100)
    await _take(lim)  # connected, script loaded
    server.freeze()
    held: list[float] = []

    async def caller() -> None:
        t0 = time.monotonic()
        with anyio.move_on_after(0.3):
            with suppress(LimiterUnavailable):
                await _take(lim)
        held.append(time.monotonic() - t0)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(caller)
    assert len(held) == 8
    assert max(held) < 0.3 + 0.25, held  # each gone at its own deadline, not a socket timeout


async def test_kth_queued_caller_fails_fast_during_an_outage(
    server: Server, limiters: list[RedisRateLimiter]
) -> None:
    lim = make(server, limiters, f"k-{uuid.uuid4().hex}", rpm=100_000)
    await _take(lim)
    server.freeze()
    outcomes: list[tuple[str, float]] = []
    t0 = time.monotonic()

    async def caller() -> None:
        try:
            await _take(lim)
            outcomes.append(("ok", time.monotonic() - t0))
        except LimiterUnavailable:
            outcomes.append(("refused", time.monotonic() - t0))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(caller)
    assert [o for o, _ in outcomes] == ["refused"] * 10
    # One call timeout (connect + socket, 2 s) for the head; everyone queued behind it at
    # once, not one timeout each (10 callers: 20 s).
    assert max(t for _, t in outcomes) < 3.0, outcomes


async def test_a_grant_decided_during_a_freeze_does_not_hold_the_slot_after(
    server: Server, limiters: list[RedisRateLimiter]
) -> None:
    key = f"k-{uuid.uuid4().hex}"
    a = make(server, limiters, key, max_concurrency=1)
    b = make(server, limiters, key, max_concurrency=1, poll_interval=0.02)
    await _take(a)
    server.freeze()
    with anyio.move_on_after(0.2):  # the command sits in the frozen server's buffer
        await _take(a)
    server.thaw()  # the server now runs the stale acquire: a grant nobody will release
    with anyio.fail_after(3):  # not lease_ttl (600 s): the withdrawal reaches Redis
        await _take(b)
    s = await b.fetch_statistics()
    assert s["models"]["*"]["in_flight_shared"] == 0


async def test_a_release_lost_in_a_freeze_is_retried_after_recovery(
    server: Server, limiters: list[RedisRateLimiter]
) -> None:
    key = f"k-{uuid.uuid4().hex}"
    a = make(server, limiters, key, max_concurrency=1)
    b = make(server, limiters, key, max_concurrency=1, poll_interval=0.02)
    permit = a.acquire(1, model="m")
    await permit.__aenter__()
    server.freeze()
    t0 = time.monotonic()
    with anyio.fail_after(5):
        await permit.__aexit__(None, None, None)
    assert time.monotonic() - t0 < 0.1  # leaving a permit never waits for Redis
    await anyio.sleep(1.5)  # the release's first tries fail
    server.thaw()
    with anyio.fail_after(5):  # a's retry releases the slot; nothing else calls a
        await _take(b)


async def test_killed_and_restarted_redis(server: Server, limiters: list[RedisRateLimiter]) -> None:
    lim = make(server, limiters, f"k-{uuid.uuid4().hex}", rpm=100_000, max_concurrency=10)
    await _take(lim)
    server.kill()
    with anyio.fail_after(3), pytest.raises(LimiterUnavailable):
        await _take(lim)
    server.start()
    with anyio.fail_after(5):
        while True:  # the outage cool-down passes, the next caller probes and gets in
            try:
                await _take(lim)
                break
            except LimiterUnavailable:
                await anyio.sleep(0.1)
    s = await lim.fetch_statistics()
    assert s["in_flight"] == 0 and s["models"]["*"]["in_flight_shared"] == 0


async def test_allow_policy_fails_open_and_says_so_once_per_outage(
    server: Server, limiters: list[RedisRateLimiter], capture_logs: Any = None
) -> None:
    import structlog.testing

    lim = make(
        server, limiters, f"k-{uuid.uuid4().hex}", rpm=100_000, max_concurrency=4,
        on_redis_error="allow",
    )  # fmt: skip
    await _take(lim)
    server.kill()
    structlog.configure()
    try:
        with structlog.testing.capture_logs() as logs, anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(_take, lim)
    finally:
        structlog.reset_defaults()
    s = lim.statistics()
    assert s["acquired"] == 21 and s["fail_open"] == 20 and s["in_flight"] == 0
    downs = [e for e in logs if e["event"] == "redis_limiter_unavailable"]
    assert len(downs) == 1 and downs[0]["log_level"] == "warning"
    assert downs[0]["on_redis_error"] == "allow"
    assert str(server.port) not in repr(logs)  # the reason is a class name, no address


def test_bad_error_policy_is_refused() -> None:
    from asyncllm import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_redis_error"):
        RedisRateLimiter(rpm=1, url="redis://127.0.0.1:1/0", key="k", on_redis_error="maybe")


def test_policy_and_window_margin_come_from_the_config_table() -> None:
    from asyncllm import ConfigurationError
    from asyncllm.limits import limiter

    lim = limiter(
        {"rpm": 60, "period": 1.0, "redis_url": "redis://127.0.0.1:1/0", "redis_key": "k",
         "on_redis_error": "allow", "window_margin": 0.1}
    )  # fmt: skip
    assert isinstance(lim, RedisRateLimiter) and lim.policy == "allow"
    assert lim.config.window_margin == 0.1 and lim._const.split()[6] == repr(1.1)
    with pytest.raises(ConfigurationError, match="on_redis_error"):
        limiter({"rpm": 1, "redis_url": "redis://h/0", "redis_key": "k", "on_redis_error": "x"})
    with pytest.raises(ConfigurationError, match="window_margin"):
        limiter({"rpm": 1, "redis_url": "redis://h/0", "redis_key": "k", "window_margin": -1})
