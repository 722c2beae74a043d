"""Hedges with several backups (staggered or at once) and honest hedge counters."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _orchfakes import RecordingLimiter, other_tasks

from asyncllm import ChatRequest, Client, ConfigurationError
from asyncllm.orchestrator import Hedge
from asyncllm.testing import FakeProvider, FakeReply

pytestmark = pytest.mark.looptime


def timed(
    name: str, latencies: list[float], starts: list[tuple[str, float]], *, stream: bool = False
) -> FakeProvider:
    """A fake whose i-th call takes latencies[i] (the last repeats), recording start times."""

    def handler(request: ChatRequest, i: int) -> FakeReply:
        starts.append((name, anyio.current_time()))
        return FakeReply(tokens=(name,), latency=latencies[min(i, len(latencies) - 1)])

    return FakeProvider(name, handler=handler)


def counters(client: Client) -> dict[str, int]:
    c = client.statistics()["counters"]
    return {k: c[k] for k in ("hedge_scheduled", "hedge", "hedge_unsent")}


def budget(client: Client) -> dict[str, Any]:
    (b,) = client.statistics()["hedge_allowance"].values()
    return dict(b)


async def test_backups_are_staggered_and_losers_cancelled(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    a, b = timed("a", [5.0], starts), timed("b", [5.0], starts)
    c = timed("c", [0.1], starts)
    hedge = Hedge(delay=0.2, stagger=0.05, max_attempts=3)
    async with Client([a, b, c], strategy=hedge, log=False) as client:
        response = await client.complete("hi")
        assert response.provider == "c"
        assert [(n, round(t, 3)) for n, t in starts] == [("a", 0.0), ("b", 0.2), ("c", 0.25)]
        assert float(looptime) == pytest.approx(0.35, abs=1e-3)
        assert (a.cancelled, b.cancelled, c.cancelled) == (1, 1, 0)
        assert counters(client) == {"hedge_scheduled": 2, "hedge": 2, "hedge_unsent": 0}
        assert budget(client)["spent"] == 2
        assert not other_tasks()


async def test_stagger_zero_sends_every_backup_at_once(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    providers = [timed(n, [5.0], starts) for n in "abc"] + [timed("d", [0.1], starts)]
    hedge = Hedge(delay=0.3, stagger=0.0, max_attempts=4)
    async with Client(providers, strategy=hedge, log=False) as client:
        assert (await client.complete("hi")).provider == "d"
    assert [(n, round(t, 3)) for n, t in starts] == [
        ("a", 0.0), ("b", 0.3), ("c", 0.3), ("d", 0.3),
    ]  # fmt: skip
    assert float(looptime) == pytest.approx(0.4, abs=1e-3)
    assert [p.cancelled for p in providers] == [1, 1, 1, 0]


async def test_the_allowance_caps_the_number_of_backups() -> None:
    starts: list[tuple[str, float]] = []
    providers = [timed(n, [1.0], starts) for n in "abc"]
    hedge = Hedge(delay=0.1, stagger=0.1, max_attempts=3, allowance=0.0, burst=1.0)
    async with Client(providers, strategy=hedge, log=False) as client:
        await client.complete("hi")
        assert [n for n, _ in starts] == ["a", "b"]  # the second backup found no token
        assert budget(client)["denied"] == 1
        assert counters(client) == {"hedge_scheduled": 1, "hedge": 1, "hedge_unsent": 0}


async def test_adaptive_stagger_follows_the_backup_providers_latency(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    # Five 0.1 s answers teach the window (p90 = 0.1 s); then primary and first backup hang.
    a = timed("a", [0.1] * 5 + [5.0, 5.0, 0.05], starts)
    hedge = Hedge(delay=0.5, stagger="adaptive", min_samples=5, max_attempts=3, burst=5)
    async with Client(a, strategy=hedge, log=False) as client:
        for _ in range(5):
            await client.complete("hi")
        t0 = float(looptime)
        await client.complete("hi")
    assert [round(t - t0, 3) for _, t in starts[5:]] == [0.0, 0.5, 0.6]


async def test_adaptive_stagger_uses_the_backup_providers_window_once_it_is_full(
    looptime: float,
) -> None:
    starts: list[tuple[str, float]] = []
    # Eight requests: a hangs, b answers its backup in 0.2 s (b learns p90 = 0.2 s; a only
    # sees censored losers). The ninth: both hang, and the second backup follows b's p90.
    a = timed("a", [5.0] * 9 + [0.05], starts)
    b = timed("b", [0.2] * 8 + [5.0], starts)
    hedge = Hedge(delay=0.5, min_samples=2, max_attempts=3, burst=20)
    async with Client([a, b], strategy=hedge, log=False) as client:
        for _ in range(8):
            assert (await client.complete("hi")).provider == "b"
        assert len(starts) == 16  # no second backups while b answered in time
        t0 = float(looptime)
        assert (await client.complete("hi")).provider == "a"
    assert [(n, round(t - t0, 3)) for n, t in starts[16:]] == [("a", 0.0), ("b", 0.5), ("a", 0.7)]


async def test_adaptive_stagger_uses_the_primarys_window_while_the_backups_is_cold(
    looptime: float,
) -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [0.1] * 5 + [5.0], starts)  # a learns p90 = 0.1 s; b has no samples
    b = timed("b", [5.0], starts)
    c = timed("c", [0.05], starts)
    hedge = Hedge(delay=0.5, min_samples=5, max_attempts=3, burst=5)
    async with Client([a, b, c], strategy=hedge, log=False) as client:
        for _ in range(5):
            await client.complete("hi")
        t0 = float(looptime)
        assert (await client.complete("hi")).provider == "c"
    assert [(n, round(t - t0, 3)) for n, t in starts[5:]] == [("a", 0.0), ("b", 0.5), ("c", 0.6)]


async def test_adaptive_stagger_waits_the_delay_until_warm(looptime: float) -> None:
    starts: list[tuple[str, float]] = []
    a = timed("a", [5.0, 5.0, 0.05], starts)
    async with Client(a, strategy=Hedge(delay=0.5, max_attempts=3), log=False) as client:
        await client.complete("hi")
    assert [round(t, 3) for _, t in starts] == [0.0, 0.5, 1.0]


def test_default_delay_quantile_leaves_room_for_later_backups() -> None:
    assert Hedge().delay_quantile == pytest.approx(0.96)
    assert Hedge(allowance=0.1).delay_quantile == pytest.approx(0.92)
    assert Hedge(quantile=0.9).delay_quantile == 0.9
    assert Hedge().max_attempts == 3
    with pytest.raises(ConfigurationError):
        Hedge(stagger=-1.0)
    with pytest.raises(ConfigurationError):
        Hedge(stagger_quantile=1.0)


async def test_stream_backups_commit_on_the_first_token(looptime: float) -> None:
    slow_first = FakeReply(tokens=("", "slow"), latency=0.05, token_delay=5.0)
    a = FakeProvider("a", replies=[slow_first])
    b = FakeProvider("b", replies=[slow_first])
    c = FakeProvider("c", replies=[FakeReply(tokens=("quick", " one"), latency=0.1)])
    hedge = Hedge(delay=0.3, stagger=0.1, max_attempts=3)
    async with Client([a, b, c], strategy=hedge, log=False) as client:
        async with client.stream("hi") as s:
            assert s.provider == "c"
            assert float(looptime) == pytest.approx(0.5, abs=1e-3)  # a@0, b@0.3, c@0.4
            texts = [chunk.text async for chunk in s]
        assert "".join(texts) == "quick one"
        assert counters(client) == {"hedge_scheduled": 2, "hedge": 2, "hedge_unsent": 0}
    assert a.open_streams == b.open_streams == c.open_streams == 0
    assert (a.cancelled, b.cancelled) == (1, 1)
    assert not other_tasks()


class _SlowAdmission(RecordingLimiter):
    """Admits after ``hold`` seconds that cannot be cancelled (a permit being granted)."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold

    def acquire(self, tokens: int, *, model: str) -> Any:
        limiter = self

        class _CM:
            async def __aenter__(self) -> Any:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(limiter.hold)
                return self

            async def __aexit__(self, *exc: object) -> None:
                return None

            def settle(self, usage: object) -> None:
                return None

        return _CM()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_backup_cancelled_before_it_was_sent_is_not_counted_or_charged(
    stream: bool,
) -> None:
    # a answers at 1.0 s; the backup to b is admitted at 1.05 s, after a won: never sent.
    a = FakeProvider("a", replies=[FakeReply(latency=1.0)])
    b = FakeProvider("b", replies=[FakeReply(latency=0.01)])
    hedge = Hedge(delay=0.2, max_attempts=2)
    limits = {"b": _SlowAdmission(0.85)}
    async with Client([a, b], strategy=hedge, limits=limits, log=False) as client:
        if stream:
            async with client.stream("hi") as s:
                async for _ in s:
                    pass
        else:
            assert (await client.complete("hi")).provider == "a"
        assert b.calls == []
        assert counters(client) == {"hedge_scheduled": 1, "hedge": 0, "hedge_unsent": 1}
        assert budget(client)["spent"] == 0
        # Attempts started: the primary and the backup (which went no further).
        assert client.statistics()["counters"]["attempts"] == 2
