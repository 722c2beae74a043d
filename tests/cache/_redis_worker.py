"""One process of the two-process Redis test: ask once, print what happened as JSON.

Usage: ``python _redis_worker.py REDIS_URL NAMESPACE``
"""

from __future__ import annotations

import sys

import anyio
import orjson

from asyncllm._build import build_request
from asyncllm.cache import ResponseCache
from asyncllm.testing import FakeProvider, FakeReply

ROUTE = (("fake", "fake", "fake-model"),)


async def main(url: str, namespace: str) -> None:
    provider = FakeProvider(replies=[FakeReply(tokens=("shared", " across", " processes"))])
    request = build_request("What is shared?", {"temperature": 0})

    async def call() -> object:
        return await provider.complete(request)

    async with ResponseCache.redis(url, namespace=namespace, ttl=60) as cache:
        response = await cache.complete(request, ROUTE, call)  # type: ignore[arg-type]
    print(
        orjson.dumps(
            {
                "text": response.text,
                "chunks": list(response.chunks),
                "cached": response.cached,
                "provider_calls": len(provider.calls),
            }
        ).decode()
    )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
