"""Four processes share one budget through Redis against the simulator's own limits.

Each worker (``limits_redis_worker.py``, started with ``sys.executable``) hammers the
simulator through a ``RedisRateLimiter`` with the same key and the simulator's limits.
Together they must get zero 429s and at least 90% of the allowed token rate. Prompts are
long (~270 tokens), so the token limit binds at ~220 requests/s: the test measures the
shared limiter, not how many requests five Python processes on two busy cores can push.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import orjson
import pytest
from limits_load import LoadResult, sim_tokens

from asyncllm.testing import Simulator

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKER = Path(__file__).with_name("limits_redis_worker.py")
RPM, TPM, PERIOD = 600, 60_000, 1.0
PROCESSES, PER_PROCESS = 4, 300
CHARS, MAX_TOKENS, OUTPUT = 1000, 64, 16


async def test_four_processes_share_one_budget(redis_url: str) -> None:
    key = f"sim-{uuid.uuid4().hex}"
    async with Simulator(rpm=RPM, tpm=TPM, period=PERIOD, output_tokens=OUTPUT) as sim:
        args = [sim.openai_base_url, PER_PROCESS, RPM, TPM, PERIOD, CHARS, MAX_TOKENS]
        cmd = [sys.executable, str(WORKER), redis_url, key, *map(str, args)]
        procs = [
            await anyio.open_process(cmd, stdin=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(PROCESSES)
        ]
        try:
            with anyio.fail_after(40):
                for p in procs:
                    assert p.stdout is not None
                    line = await p.stdout.receive()
                    assert line.startswith(b"ready"), line.decode(errors="replace")
                for p in procs:
                    assert p.stdin is not None
                    await p.stdin.send(b"go\n")
                outputs = []
                for p in procs:
                    assert p.stdout is not None
                    chunks = []
                    async for chunk in p.stdout:
                        chunks.append(chunk)
                    assert await p.wait() == 0, b"".join(chunks).decode(errors="replace")
                    outputs.append(orjson.loads(b"".join(chunks)))
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
                await p.aclose()
    total = LoadResult()
    for out in outputs:
        total.merge(LoadResult.from_dict(out))
        assert out["limiter"]["acquired"] == PER_PROCESS
    assert sim.stats.rate_limited == 0
    assert total.statuses == {200: PROCESSES * PER_PROCESS}
    assert set(total.tokens) == {sim_tokens(CHARS, OUTPUT)}
    _, tok_rate = total.steady_rates()
    print(f"4 processes via Redis: {tok_rate:.0f} tokens/s of {TPM / PERIOD:.0f} allowed")
    assert tok_rate >= 0.90 * TPM / PERIOD
