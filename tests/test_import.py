"""``import asyncllm`` stays cheap: heavy dependencies load only when their feature is used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "aiohttp",
    "openai",
    "anthropic",
    "httpx2",
    "redis",
    "genai_prices",
    "opentelemetry",
    "aiocache",
    "litellm",
    "pydantic",
    "structlog",
    "rich",
    "pygments",
)


def test_import_loads_no_heavy_dependency() -> None:
    code = f"import sys, asyncllm\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_a_request_without_structlog_never_imports_it() -> None:
    # An application that never imported structlog cannot have configured it: the library
    # logs nothing then, and must not pay for importing it (with rich and pygments).
    code = """
import sys, anyio
from asyncllm import Client
from asyncllm.testing import FakeProvider

async def main():
    async with Client(FakeProvider(), log=True) as client:
        r = await client.complete("hi")
        async with client.stream("hi") as s:
            text = "".join([c.text async for c in s])
    assert r.text and text and r.request_id
    print(",".join(m for m in ("structlog", "rich", "pygments") if m in sys.modules))

anyio.run(main)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_lazy_names_resolve() -> None:
    import asyncllm

    assert asyncllm.ResponseCache.__name__ == "ResponseCache"
    assert issubclass(asyncllm.CacheClosed, asyncllm.AsyncLLMError)
