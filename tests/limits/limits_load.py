"""Drive many chat requests through a limiter at a simulator and measure the achieved rate.

Used by the limits tests, the Redis worker processes and ``benchmarks/bench_limits.py``.
Two drivers:

- :func:`client_map`: the real path, ``Client(provider, limits={name: limiter}).map(...)``
  with the ``openai_compatible`` driver; stamps are completion times.
- :func:`hammer`: raw aiohttp, doing by hand what the orchestrator does (``acquire`` ->
  POST -> ``settle(usage)``, ``observe(headers)``, ``pause(retry_after)`` on a 429), with
  admission-time stamps and every HTTP status visible (the client would retry 429s).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import orjson

from asyncllm import ChatRequest, Client, Message, Usage
from asyncllm.abc import Limiter
from asyncllm.limits import reservation_tokens
from asyncllm.providers import resolve
from asyncllm.providers._headers import openai_rate_limits, retry_after

__all__ = ["LoadResult", "client_map", "hammer", "sim_tokens"]


def sim_tokens(prompt_chars: int, output_tokens: int) -> int:
    """What the simulator charges a one-message request (its documented rule)."""
    return math.ceil(prompt_chars / 4) + 3 + output_tokens


@dataclass
class LoadResult:
    """Admission times (``time.monotonic``) and charged tokens of each request."""

    stamps: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: LoadResult) -> None:
        self.stamps += other.stamps
        self.tokens += other.tokens
        self.statuses.update(other.statuses)

    def as_dict(self) -> dict[str, Any]:
        statuses = {str(k): v for k, v in self.statuses.items()}
        return {"stamps": self.stamps, "tokens": self.tokens, "statuses": statuses}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadResult:
        return cls(d["stamps"], d["tokens"], Counter({int(k): v for k, v in d["statuses"].items()}))

    def steady_rates(self) -> tuple[float, float]:
        """Requests/s and tokens/s over the second half of the run.

        The first half holds the burst and the catch-up on room banked while the first
        requests were on their way; by the second half the limiter is at its sustained rate.
        """
        pairs = sorted(zip(self.stamps, self.tokens, strict=True))
        half = len(pairs) // 2
        t0 = pairs[half][0]
        window = pairs[half + 1 :]
        span = window[-1][0] - t0
        return len(window) / span, sum(n for _, n in window) / span


async def hammer(
    limiter: Limiter,
    url: str,
    n: int,
    *,
    prompt_chars: int,
    max_tokens: int,
    model: str = "sim-1",
    connections: int = 64,
) -> LoadResult:
    """Send ``n`` requests at once through ``limiter``; returns what happened."""
    prompt = "x" * prompt_chars
    request = ChatRequest(messages=(Message(role="user", content=prompt),), max_tokens=max_tokens)
    reserve = reservation_tokens(request)
    body = orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": prompt}],
         "max_tokens": max_tokens}
    )  # fmt: skip
    headers = {"content-type": "application/json", "authorization": "Bearer test"}
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with limiter.acquire(reserve, model=model) as permit:
                stamp = time.monotonic()
                async with session.post(url, data=body, headers=headers) as resp:
                    data = await resp.read()
                    result.statuses[resp.status] += 1
                    info = openai_rate_limits(resp.headers)
                    if resp.status == 200:
                        u = orjson.loads(data)["usage"]
                        usage = Usage(u["prompt_tokens"], u["completion_tokens"])
                        permit.settle(usage)
                        result.stamps.append(stamp)
                        result.tokens.append(usage.total_tokens)
                    elif resp.status == 429:
                        permit.settle(Usage())  # refused: the provider charged nothing
                        limiter.pause(retry_after(resp.headers) or 1.0, model=model)
                    if info is not None:
                        limiter.observe(info, model=model)

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
    return result


async def client_map(
    limiter: Limiter,
    base_url: str,
    n: int,
    *,
    prompt_chars: int,
    max_tokens: int,
    concurrency: int = 256,
) -> LoadResult:
    """Run ``n`` identical prompts through ``Client.map`` with ``limiter`` for the provider.

    ``base_url`` is the simulator's OpenAI root (``sim.openai_base_url``). Statuses: 200 per
    success, 0 per failed request.
    """
    provider = resolve("openai_compatible:sim-1", base_url=base_url, name="sim")
    result = LoadResult()
    async with Client(provider, limits={"sim": limiter}, log=False) as client:
        prompts = ["x" * prompt_chars] * n
        async with client.map(prompts, concurrency=concurrency, max_tokens=max_tokens) as results:
            async for r in results:
                if r.response is None:
                    result.statuses[0] += 1
                    result.errors.append(repr(r.error))
                    continue
                result.statuses[200] += 1
                result.stamps.append(time.monotonic())
                result.tokens.append(r.response.usage.total_tokens)
    return result
