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
)


def test_import_loads_no_heavy_dependency() -> None:
    code = f"import sys, asyncllm\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_lazy_names_resolve() -> None:
    import asyncllm

    assert asyncllm.ResponseCache.__name__ == "ResponseCache"
    assert issubclass(asyncllm.CacheClosed, asyncllm.AsyncLLMError)
