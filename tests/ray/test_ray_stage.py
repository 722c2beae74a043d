"""``asyncllm.ray`` on a local Ray (2 CPUs) against the simulator enforcing its own limits.

Actors share one Redis: their rate limit (no 429 from the simulator, at least 90% of the
allowed rate), their budget (never overspent) and their cache (a second actor hits what
the first filled). One Ray session serves every test here (``ray_session``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
import orjson
import pytest

from asyncllm import ConfigurationError
from asyncllm.testing import Simulator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


def config(sim: Simulator, **extra: Any) -> dict[str, Any]:
    provider: dict[str, Any] = {"spec": "openai_compatible:sim-1", "base_url": sim.openai_base_url}
    provider |= extra.pop("provider", {})
    return {"client": {"concurrency": 32}, "providers": {"sim": provider}, **extra}


def rows(n: int, tag: str) -> list[dict[str, Any]]:
    lines = [orjson.dumps({"id": f"{tag}-{i}", "prompt": f"{tag} {i}"}).decode() for i in range(n)]
    return [{"line": i + 1, "raw": raw} for i, raw in enumerate(lines)]


async def run(ds: Any) -> list[dict[str, Any]]:
    """Materialize in a thread: the simulator answers on this test's event loop."""
    out: list[dict[str, Any]] = await anyio.to_thread.run_sync(ds.take_all)
    return out


async def test_four_actors_share_one_redis_rate_limit(ray_session: Any, redis_url: str) -> None:
    import asyncllm.ray

    rpm, n = 100, 700  # 100 requests/s allowed
    async with Simulator(rpm=rpm, period=1.0) as sim:
        # The simulator refills a bucket (it does not count a strict window), so the
        # window's jitter margin can be small here: 2% instead of the default 5%.
        limits = {"rpm": rpm, "period": 1.0, "redis_key": f"ray-{uuid.uuid4().hex}",
                  "window_margin": 0.02}  # fmt: skip
        cfg = config(sim, provider={"limits": limits})
        ds = asyncllm.ray.process(
            ray_session.data.from_items(rows(n, "rate")), cfg, actors=4, redis_url=redis_url
        )
        samples: list[tuple[float, int]] = []

        async def sample() -> None:
            while True:
                samples.append((time.monotonic(), sim.stats.completed))
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            out = await run(ds)
            tg.cancel_scope.cancel()
    assert len(out) == n and {r["error"] for r in out} == {None}
    assert sorted(r["custom_id"] for r in out) == sorted(f"rate-{i}" for i in range(n))
    assert sim.stats.rate_limited == 0
    # Steady rate, from the 250th to the 650th answer: past the start burst and the seconds
    # in which the actors come up one by one (on 2 busy cores), before the tail.
    t_a = next(t for t, c in samples if c >= 250)
    t_b = next(t for t, c in samples if c >= 650)
    rate = 400 / (t_b - t_a)
    print(f"4 actors: {rate:.1f} requests/s of {rpm} allowed")
    assert rate >= 0.90 * rpm


async def test_budget_shared_by_four_actors_is_never_overspent(
    ray_session: Any, redis_url: str
) -> None:
    import asyncllm.ray

    usd = 0.1
    async with Simulator(output_tokens=16) as sim:
        cfg = config(
            sim,
            provider={"price": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}},
            budget={"usd": usd, "period": 3600},
        )
        cfg["budget"]["redis_url"] = redis_url
        # Each answer costs ~(input + 16 output tokens) * $0.001 = ~$0.02-0.03 at max_tokens
        # reservations; the budget admits only a few.
        data = [{"line": i + 1, "raw": orjson.dumps(
            {"id": f"b-{uuid.uuid4().hex[:6]}-{i}", "prompt": "x", "max_tokens": 2}).decode()}
            for i in range(200)]  # fmt: skip
        cfg["client"]["concurrency"] = 8
        ds = asyncllm.ray.process(ray_session.data.from_items(data), cfg, actors=4)
        out = await run(ds)
    assert len(out) == 200
    spent = sum(orjson.loads(r["record"])["asyncllm"]["cost_usd"] or 0.0 for r in out)
    answered = [r for r in out if r["error"] is None]
    refused = [r for r in out if r["error"] == asyncllm.ray.BUDGET_REFUSED]
    print(f"budget ${usd}: spent ${spent:.5f} on {len(answered)} answers, {len(refused)} refused")
    assert answered and refused and len(answered) + len(refused) == 200
    assert spent <= usd + 1e-12
    assert sim.stats.completed == len(answered)


async def test_second_actor_hits_the_cache_the_first_filled(
    ray_session: Any, redis_url: str
) -> None:
    import asyncllm.ray

    async with Simulator() as sim:
        cfg = config(sim, cache={"ttl": 600, "namespace": uuid.uuid4().hex})
        items = [
            {
                "line": i + 1,
                "raw": orjson.dumps(
                    {"id": f"c-{i}", "prompt": f"cache {i}", "temperature": 0}
                ).decode(),
            }
            for i in range(40)
        ]  # fmt: skip (temperature 0: cacheable by the default policy)
        first = await run(
            asyncllm.ray.process(ray_session.data.from_items(items), cfg, redis_url=redis_url)
        )
        sent = sim.stats.completed
        second = await run(
            asyncllm.ray.process(
                ray_session.data.from_items(items), cfg, actors=2, redis_url=redis_url
            )
        )
    assert sent == 40 and sim.stats.completed == 40  # the second run sent nothing
    assert not any(orjson.loads(r["record"])["asyncllm"]["cached"] for r in first)
    assert all(orjson.loads(r["record"])["asyncllm"]["cached"] for r in second)


def test_limits_without_redis_refuse_more_than_one_actor(ray_session: Any) -> None:
    import asyncllm.ray

    cfg = {"providers": {"sim": {"spec": "openai_compatible:sim-1",
                                 "base_url": "http://127.0.0.1:9/v1", "limits": {"rpm": 10}}},
           "budget": {"usd": 1.0}}  # fmt: skip
    ds = ray_session.data.from_items(rows(2, "x"))
    with pytest.raises(ConfigurationError, match=r"\[providers\.sim\.limits\], \[budget\]"):
        asyncllm.ray.process(ds, cfg, actors=3)
    asyncllm.ray.process(ds, cfg, actors=1)  # one actor: the limits are not multiplied


async def test_bad_lines_and_failures_are_rows(ray_session: Any) -> None:
    import asyncllm.ray

    async with Simulator() as sim:
        items = [{"line": 1, "raw": "not json"},
                 {"line": 2, "raw": orjson.dumps({"id": "ok", "prompt": "hi"}).decode()},
                 {"line": 3, "raw": orjson.dumps({"id": "bad", "prompt": 3}).decode()}]  # fmt: skip
        out = await run(asyncllm.ray.process(ray_session.data.from_items(items), config(sim)))
    by_line = {r["line"]: r for r in out}
    assert len(out) == 3 and by_line[2]["error"] is None
    assert by_line[1]["error"] == "invalid_json" and by_line[3]["error"] is not None
    rec = asyncllm.ray.record_of(by_line[2])
    assert rec["custom_id"] == "ok" and rec["response"]["status_code"] == 200
