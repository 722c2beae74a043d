"""The stage's client lives in a task of its own: built once however many batches arrive
first, closed in the task that opened it, and closed when Ray drops the stage on another
thread than the loop's (what Ray Data does when an actor exits gracefully).

No Ray here: the actor's arrangement (an event loop run by a thread of its own, batches
submitted to it, the stage dropped from the main thread) is reproduced directly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import orjson
import pytest

from asyncllm import Client, ConfigurationError
from asyncllm.ray import AsyncLLMStage
from asyncllm.ray import _stage as stage_module
from asyncllm.testing import Simulator


@pytest.fixture
def actor_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in a daemon thread, as Ray Data runs an async stage's batches."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def config(sim: Simulator) -> dict[str, Any]:
    return {
        "client": {"concurrency": 4},
        "providers": {"sim": {"spec": "openai_compatible:sim-1", "base_url": sim.openai_base_url}},
        "cache": {"ttl": 60},
    }


def batch(tag: str, n: int = 3) -> dict[str, list[Any]]:
    raws = [orjson.dumps({"id": f"{tag}-{i}", "prompt": f"{tag} {i}"}).decode() for i in range(n)]
    return {"line": list(range(1, n + 1)), "raw": raws}


async def on(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """Run ``coro`` on the actor's loop without blocking this one (the simulator's)."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    return await anyio.to_thread.run_sync(lambda: future.result(30))


async def test_batches_arriving_together_share_one_client(
    actor_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    real = stage_module.build_client

    def counting(*args: Any, **kwargs: Any) -> Any:
        client = real(*args, **kwargs)
        built.append(client)
        return client

    real_enter = Client.__aenter__

    async def slow_enter(self: Client) -> Client:
        await asyncio.sleep(0.05)  # opening takes a while (a Redis, a price table)
        return await real_enter(self)

    monkeypatch.setattr(stage_module, "build_client", counting)
    monkeypatch.setattr(Client, "__aenter__", slow_enter)
    async with Simulator() as sim:
        stage = AsyncLLMStage(config(sim))

        async def two_batches() -> list[Any]:
            return await asyncio.gather(stage(batch("a")), stage(batch("b")))

        outs = await on(actor_loop, two_batches())
        assert [r for out in outs for r in out["error"]] == [None] * 6
        assert len(built) == 1
        await on(actor_loop, stage.aclose())


async def test_a_dropped_stage_closes_its_client_from_another_thread(
    actor_loop: asyncio.AbstractEventLoop,
) -> None:
    async with Simulator() as sim:
        holder = [AsyncLLMStage(config(sim))]
        out = await on(actor_loop, holder[0](batch("x")))
        assert out["error"] == [None] * 3
        host = holder[0]._host
        client = host.client
        assert client is not None
        # Drop the stage on a thread that is not the actor loop's, as Ray's shutdown does.
        await anyio.to_thread.run_sync(holder.clear)
        assert host.client is None  # closed before __del__ returned

        async def use() -> Any:
            return await client.complete("after close")

        with pytest.raises(RuntimeError, match="closed"):
            await on(actor_loop, use())


async def test_a_client_that_cannot_be_built_fails_every_batch_alike(
    actor_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConfigurationError("no such provider kind 'x'")

    monkeypatch.setattr(stage_module, "build_client", broken)
    async with Simulator() as sim:
        stage = AsyncLLMStage(config(sim))

        async def two_batches() -> list[Any]:
            return await asyncio.gather(
                stage(batch("a")), stage(batch("b")), return_exceptions=True
            )

        outs = await on(actor_loop, two_batches())
        assert [type(o) for o in outs] == [ConfigurationError, ConfigurationError]
        stage._host.close()  # nothing was opened: nothing to do, no hang
