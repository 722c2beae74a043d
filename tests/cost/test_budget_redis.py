"""RedisBudget: atomic reservations shared between processes, leases, periods, alerts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from asyncllm import BudgetExceeded, ChatRequest, Message
from asyncllm.cost import (
    BudgetAlert,
    BudgetUnavailable,
    ModelPrice,
    Prices,
    RedisBudget,
    SpendLimit,
)

pytestmark = pytest.mark.redis

PRICES = Prices({("openai", "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000)})
KW: dict[str, Any] = {"provider": "openai", "kind": "openai", "model": "m", "local": False}


def req(max_tokens: int = 100, **tags: str) -> ChatRequest:
    return ChatRequest(messages=(Message("user", "hi"),), max_tokens=max_tokens, tags=tags or None)


def worst(r: ChatRequest) -> float:
    assert r.max_tokens is not None
    return (r.estimated_input_tokens() + r.max_tokens) * 0.001


class Clock:
    def __init__(self, t: float = 1_750_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def make(redis: Redis, *limits: SpendLimit | float, **kw: Any) -> RedisBudget:
    kw.setdefault("pricing", PRICES)
    kw.setdefault("name", f"t-{uuid.uuid4().hex[:8]}")
    return RedisBudget(redis, *limits, **kw)


async def spend(b: RedisBudget, r: ChatRequest, cost: float | None) -> None:
    async with b.reserve(r, **KW) as res:
        res.settle(cost)


_WORKER = textwrap.dedent(
    """
    import json, random, sys
    import anyio
    from asyncllm import BudgetExceeded, ChatRequest, Message
    from asyncllm.cost import ModelPrice, Prices, RedisBudget, SpendLimit

    async def main(url, name, seed):
        prices = Prices({("openai", "m"): ModelPrice(input_per_mtok=1000, output_per_mtok=1000)})
        budget = RedisBudget(url, SpendLimit(20.0), pricing=prices, name=name)
        r = ChatRequest(messages=(Message("user", "hi"),), max_tokens=50)
        rng = random.Random(seed)
        settled, refused, bad = [], 0, 0
        # Start together: wait for the test's go signal so both processes contend.
        print("ready", flush=True)
        while not await budget._redis.get(name + ":go"):
            await anyio.sleep(0.005)

        async def one():
            nonlocal refused, bad
            await anyio.sleep(rng.random() * 0.3)  # arrivals spread over 0.3 s
            try:
                async with budget.reserve(
                    r, provider="openai", kind="openai", model="m", local=False
                ) as res:
                    await anyio.sleep(rng.random() / 100)
                    cost = res.amount_usd * rng.uniform(0.5, 1.0)
                    res.settle(cost)
                    settled.append(cost)
            except BudgetExceeded as e:
                refused += 1
                bad += e.remaining_usd >= e.requested_usd

        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(one)
        await budget.aclose()
        print(json.dumps({"settled": sum(settled), "ok": len(settled), "refused": refused,
                          "bad": bad}))

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


async def test_two_processes_sharing_a_budget_stay_within_it(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    name = f"shared-{uuid.uuid4().hex[:8]}"

    def start(seed: int) -> subprocess.Popen[str]:
        argv = [sys.executable, str(script), redis_url, name, str(seed)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [await anyio.to_thread.run_sync(start, seed) for seed in (1, 2)]
    for p in procs:
        assert p.stdout is not None
        assert (await anyio.to_thread.run_sync(p.stdout.readline)).strip() == "ready"
    await redis.set(name + ":go", 1)
    outs = []
    for p in procs:
        out, err = await anyio.to_thread.run_sync(p.communicate)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    total = sum(o["settled"] for o in outs)
    assert total <= 20.0
    assert all(o["bad"] == 0 for o in outs)  # refused only when the worst case did not fit
    assert sum(o["refused"] for o in outs) > 0 and sum(o["ok"] for o in outs) >= 20.0 // 0.057
    assert all(o["ok"] > 10 for o in outs), outs  # both processes really shared it
    reader = make(redis, SpendLimit(20.0), name=name)
    stats = (await reader.fetch_statistics())["buckets"]["day"]
    assert stats["spent_usd"] == pytest.approx(total, abs=1e-6)
    assert stats["reserved_usd"] == 0
    assert stats["refusals"] == sum(o["refused"] for o in outs)


async def test_refusal_boundary_and_settle(redis: Redis) -> None:
    r = req()
    w = worst(r)
    b = make(redis, SpendLimit(3 * w))
    other = make(redis, SpendLimit(3 * w), name=b.name)  # another "process"
    held = [b.reserve(r, **KW) for _ in range(3)]
    for cm in held:
        await cm.__aenter__()
    with pytest.raises(BudgetExceeded) as ei:
        await spend(other, r, None)
    assert ei.value.remaining_usd == pytest.approx(0, abs=1e-9)
    held[0].settle(w / 4)
    await held[0].__aexit__(None, None, None)
    await spend(other, req(max_tokens=r.estimated_input_tokens() // 2), 0.0)
    for cm in held[1:]:
        await cm.__aexit__(None, None, None)  # unsettled: keeps the worst case
    stats = (await b.fetch_statistics())["buckets"]["day"]
    assert stats["spent_usd"] == pytest.approx(2.25 * w)
    assert stats["reserved_usd"] == 0 and stats["refusals"] == 1
    assert b.statistics()["reservations"] == 3 and other.statistics()["refusals"] == 1


async def test_cancelled_attempt_keeps_worst_case(redis: Redis) -> None:
    r = req()
    b = make(redis, SpendLimit(10.0))
    with anyio.move_on_after(0.05):
        async with b.reserve(r, **KW):
            await anyio.sleep(10)
    stats = (await b.fetch_statistics())["buckets"]["day"]
    assert stats["spent_usd"] == pytest.approx(worst(r)) and stats["reserved_usd"] == 0


async def test_thresholds_fire_once_across_processes(redis: Redis) -> None:
    alerts: list[BudgetAlert] = []
    name = f"t-{uuid.uuid4().hex[:8]}"
    a = make(redis, SpendLimit(1.0), name=name, on_alert=alerts.append)
    b = make(redis, SpendLimit(1.0), name=name, on_alert=alerts.append)
    r = req(max_tokens=10)
    await spend(a, r, 0.5)
    await spend(b, r, 0.35)  # crosses 0.8 here
    await spend(a, r, 0.05)  # still above 0.8: no second alert from the other process
    await spend(b, r, 0.1)  # reaches 1.0
    assert [(x.kind, x.threshold) for x in alerts] == [("threshold", 0.8), ("threshold", 1.0)]
    for budget in (a, b):
        with pytest.raises(BudgetExceeded):
            await spend(budget, r, None)
    assert [x.kind for x in alerts].count("refused") == 1


async def test_per_tag_and_provider_buckets(redis: Redis) -> None:
    r = req(tenant="acme")
    b = make(redis, SpendLimit(worst(r), per_tag="tenant"), SpendLimit(100.0, provider="openai"))
    await spend(b, r, None)
    with pytest.raises(BudgetExceeded, match=r"tenant\[acme\]"):
        await spend(b, r, None)
    await spend(b, req(tenant="other"), None)
    stats = (await b.fetch_statistics())["buckets"]
    assert stats["day/per:tenant[acme]"]["refusals"] == 1
    # The refused reservation took nothing from the provider bucket (all or nothing).
    assert stats["day/provider=openai"]["spent_usd"] == pytest.approx(2 * worst(r))
    assert stats["day/provider=openai"]["reserved_usd"] == 0


async def test_rolling_window_and_key_expiry(redis: Redis) -> None:
    clock = Clock(1000.0)
    alerts: list[BudgetAlert] = []
    b = make(redis, SpendLimit(1.0, period=60), clock=clock, lease=30, on_alert=alerts.append)
    r = req(max_tokens=10)
    await spend(b, r, 0.6)
    clock.t += 30
    await spend(b, r, 0.3)
    assert [a.threshold for a in alerts] == [0.8]
    clock.t += 31
    stats = (await b.fetch_statistics())["buckets"]["60s"]
    assert stats["spent_usd"] == pytest.approx(0.3)
    await spend(b, r, 0.55)  # above 0.8 again after falling below it: alerts again
    assert [a.threshold for a in alerts] == [0.8, 0.8]
    key = f"asyncllm:budget:{{{b.name}}}:60s:rolling"
    ttl = await redis.ttl(key)
    assert 0 < ttl <= 60 + 30 + 60


async def test_calendar_keys_expire_after_the_period(redis: Redis) -> None:
    clock = Clock(1_750_032_000.0 - 100)  # 100 s before the end of 2025-06-15 UTC
    b = make(redis, SpendLimit(1.0), clock=clock, lease=50)
    await spend(b, req(max_tokens=10), 0.1)
    ttl = await redis.ttl(f"asyncllm:budget:{{{b.name}}}:day:2025-06-15")
    assert 100 < ttl <= 100 + 50 + 60
    clock.t += 100
    assert (await b.fetch_statistics())["buckets"]["day"]["spent_usd"] == 0


async def test_lease_expiry_turns_a_dead_reservation_into_spend(redis: Redis) -> None:
    clock = Clock()
    r = req()
    dead = make(redis, SpendLimit(10.0), clock=clock, lease=30)
    alive = make(redis, SpendLimit(10.0), name=dead.name, clock=clock, lease=30)
    cm = dead.reserve(r, **KW)
    await cm.__aenter__()  # and the process "dies": never settled
    clock.t += 31
    await spend(alive, req(max_tokens=10), 0.5)
    stats = (await alive.fetch_statistics())["buckets"]["day"]
    assert stats["spent_usd"] == pytest.approx(worst(r) + 0.5)
    assert stats["reserved_usd"] == 0
    cm.settle(0.01)  # a late settle after the lease expired changes nothing
    await cm.__aexit__(None, None, None)
    assert (await alive.fetch_statistics())["buckets"]["day"]["spent_usd"] == pytest.approx(
        worst(r) + 0.5
    )


async def test_unreachable_redis_fails_closed_or_open() -> None:
    dead = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    closed = make(dead, SpendLimit(10.0))
    with pytest.raises(BudgetUnavailable, match="unavailable"):
        await spend(closed, req(), None)
    opened = make(dead, SpendLimit(10.0), on_redis_error="allow")
    await spend(opened, req(), None)
    assert closed.statistics()["errors"] == 1 and opened.statistics()["errors"] == 1
    await dead.aclose()


async def test_free_and_unpriced_requests_are_refused_once_the_limit_is_passed(
    redis: Redis,
) -> None:
    b = make(redis, SpendLimit(0.01), unknown_price="allow")
    free = {"provider": "gpu", "kind": "vllm", "model": "x", "local": True}
    async with b.reserve(req(), **free) as res:  # nothing spent yet: a free request runs
        res.settle(0.0)
    await spend(b, req(max_tokens=1), 0.02)  # a long answer settles above the limit
    for _ in range(20):
        with pytest.raises(BudgetExceeded):
            async with b.reserve(req(), **free):
                pass
        with pytest.raises(BudgetExceeded):
            async with b.reserve(req(), **{**KW, "model": "unpriced"}):
                pass
