"""A worker process for the shared-window test and benchmark.

Runs ``CONCURRENCY`` loops for ``SECONDS``: each takes a permit from a
``RedisRateLimiter`` (requests only), POSTs one chat request to ``URL`` and, on a 429,
reports the pause. Prints ``ready``, waits for a line on stdin (so all processes start
together), then prints JSON: admission stamps (``time.monotonic``, one clock for all
processes on a machine), HTTP statuses, the limiter's Redis calls and the CPU seconds used.

Usage: python limits_window_worker.py REDIS_URL KEY URL RPM PERIOD SECONDS CONCURRENCY
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
import anyio
import orjson

from asyncllm.limits import LimiterUnavailable, RedisRateLimiter
from asyncllm.providers._headers import retry_after

_BODY = orjson.dumps({"model": "sim-1", "messages": [{"role": "user", "content": "hi"}]})


async def main(argv: list[str]) -> None:
    redis_url, key, url = argv[:3]
    rpm, period, seconds, conc = float(argv[3]), float(argv[4]), float(argv[5]), int(argv[6])
    stamps: list[float] = []
    refused: list[float] = []  # admission stamps of the requests the server refused
    statuses: Counter[int] = Counter()
    async with RedisRateLimiter(rpm=rpm, period=period, url=redis_url, key=key) as lim:
        for attempt in range(20):  # connect and load the script before the start (retried:
            try:  # sixteen workers starting at once on two cores can miss a call timeout)
                await lim.fetch_statistics("sim-1")
                break
            except LimiterUnavailable:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        calls = 0
        real_call = lim._call

        async def counting(*args: Any, **kw: Any) -> Any:  # every script call, any version
            nonlocal calls
            calls += 1
            return await real_call(*args, **kw)

        lim._call = counting  # type: ignore[method-assign]
        cpu0 = time.process_time()
        conn = aiohttp.TCPConnector(limit=conc)
        headers = {"content-type": "application/json", "authorization": "Bearer test"}
        async with aiohttp.ClientSession(connector=conn) as session:

            async def loop() -> None:
                while True:
                    async with lim.acquire(0, model="sim-1"):
                        stamp = time.monotonic()
                        stamps.append(stamp)
                        async with session.post(url, data=_BODY, headers=headers) as resp:
                            await resp.read()
                            statuses[resp.status] += 1
                            if resp.status == 429:
                                refused.append(stamp)
                                lim.pause(retry_after(resp.headers) or 1.0, model="sim-1")

            with anyio.move_on_after(seconds):
                async with anyio.create_task_group() as tg:
                    for _ in range(conc):
                        tg.start_soon(loop)
        stats = lim.statistics()
        cpu = time.process_time() - cpu0
    out = {
        "stamps": stamps,
        "refused": refused,
        "statuses": {str(k): v for k, v in statuses.items()},
        "redis_calls": calls,
        "acquired": stats["acquired"],
        "cpu_s": cpu,
    }
    sys.stdout.buffer.write(orjson.dumps(out) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
