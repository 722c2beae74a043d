"""A strict sliding-window server: at most ``limit`` requests in any ``period`` seconds.

Stricter than the simulator's token buckets (which refill continuously, so a bucket full
at the start lets a whole period's worth through at once and then more): this server counts
arrivals in the last ``period`` seconds and answers 429 (with ``retry-after``) to any
request that would make it ``limit + 1``. A limiter whose start burst or steady pacing
overshoots the window by a single request is caught here. Answers an OpenAI-shaped chat
completion with a fixed usage, and records each arrival.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiohttp import web

__all__ = ["WindowServer", "window_server"]

_BODY = orjson.dumps(
    {
        "id": "chatcmpl-w",
        "object": "chat.completion",
        "created": 0,
        "model": "sim-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"},
             "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
)  # fmt: skip


class WindowServer:
    """State of one strict-window server; ``arrivals`` holds accepted arrival times."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.window: deque[float] = deque()
        self.arrivals: list[float] = []
        self.rejected = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        w = self.window
        while w and w[0] <= now - self.period:
            w.popleft()
        if len(w) >= self.limit:
            self.rejected += 1
            wait = w[0] + self.period - now
            return web.Response(
                status=429, body=b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                headers={"retry-after-ms": str(int(wait * 1000) + 1),
                         "content-type": "application/json"},
            )  # fmt: skip
        w.append(now)
        self.arrivals.append(now)
        return web.Response(body=_BODY, headers={"content-type": "application/json"})


@asynccontextmanager
async def window_server(limit: int, period: float) -> AsyncIterator[WindowServer]:
    """Run a :class:`WindowServer` on a free loopback port; ``server.url`` is its OpenAI root."""
    state = WindowServer(limit, period)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield state
    finally:
        await runner.cleanup()
