"""Over real loopback HTTP: a race's losing requests disconnect at the server as soon as
the winner has answered (the loser's HTTP response is closed, not left to finish)."""

from __future__ import annotations

import time

import pytest
from _orchfakes import other_tasks

from asyncllm import Client
from asyncllm.orchestrator import Hedge
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider
from asyncllm.testing import Fault, Simulator


def provider(name: str, sim: Simulator) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        name=name, base_url=sim.openai_base_url, model="sim-model", api_key="test-key"
    )


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_race_losers_disconnect_at_the_server(mode: str) -> None:
    async with (
        Simulator(latency=3.0) as slow,
        Simulator(latency=0.05, token_delay=0.01, output_tokens=4) as fast,
    ):
        client = Client([provider("slow", slow), provider("fast", fast)], strategy="race")
        async with client:
            started = time.perf_counter()
            if mode == "complete":
                response = await client.complete("hi")
            else:
                async with client.stream("hi") as s:
                    async for _ in s:
                        pass
                assert s.response is not None
                response = s.response
            won = time.perf_counter()
            assert response.provider == "fast"
            assert response.text
            stats = await slow.wait_for(lambda st: st.disconnected >= 1, timeout=1.0)
            seen = time.perf_counter()
        assert stats.received == 1 and stats.completed == 0
        assert fast.stats.completed == 1
        # Seen at the server right after the winner, long before the loser's 3 s latency.
        assert seen - won < 0.5
        assert seen - started < 2.0
    assert not other_tasks()


async def test_hedge_backup_to_the_same_server_disconnects_the_slow_primary() -> None:
    async with Simulator(latency=0.0, output_tokens=3) as sim:
        sim.inject(Fault.stall(5.0), times=1)  # the first request stalls
        async with Client(provider("sim", sim), strategy=Hedge(delay=0.1)) as client:
            response = await client.complete("hi")
            stats = await sim.wait_for(lambda st: st.disconnected >= 1, timeout=1.0)
        assert response.text
        assert stats.received == 2 and stats.completed == 1
