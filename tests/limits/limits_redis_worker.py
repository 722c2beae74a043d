"""A worker process for the shared-limit test and benchmark: ``Client.map`` against a
simulator with a ``RedisRateLimiter`` for it. Prints ``ready``, waits for a line on stdin,
runs, prints the result as JSON.

Usage: python limits_redis_worker.py REDIS_URL KEY SIM_BASE_URL N RPM TPM PERIOD CHARS
MAX_TOKENS (SIM_BASE_URL: the simulator's OpenAI root, ``sim.openai_base_url``)
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from limits_load import client_map

from asyncllm.limits import LimiterUnavailable, RedisRateLimiter


async def main(argv: list[str]) -> None:
    redis_url, key, sim_url = argv[:3]
    n, rpm, tpm = int(argv[3]), int(argv[4]), int(argv[5])
    period, chars, max_tokens = float(argv[6]), int(argv[7]), int(argv[8])
    async with RedisRateLimiter(rpm=rpm, tpm=tpm, period=period, url=redis_url, key=key) as lim:
        for attempt in range(20):  # connect and load the script before the start (retried:
            try:  # on a busy machine the first call can miss the library's call timeout)
                await lim.fetch_statistics("sim-1")
                break
            except LimiterUnavailable:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        result = await client_map(
            lim, sim_url, n, prompt_chars=chars, max_tokens=max_tokens, concurrency=64
        )
        stats = lim.statistics()
    out = result.as_dict() | {"limiter": {k: stats[k] for k in ("acquired", "rate_limited")}}
    sys.stdout.buffer.write(orjson.dumps(out) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
