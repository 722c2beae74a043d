"""Shared pieces of the tools tests: the (wire format, backend) cases and their drivers."""

from __future__ import annotations

from typing import Any

from asyncllm.providers import AnthropicProvider, OpenAIProvider
from asyncllm.testing import Simulator

#: (wire format, backend) pairs every behaviour is checked on.
CASES = [("openai", "native"), ("openai", "sdk"), ("anthropic", "native"), ("anthropic", "sdk")]
IDS = [f"{w}-{b}" for w, b in CASES]


def make_provider(sim: Simulator, wire: str, backend: str) -> Any:
    """The driver of ``wire`` on ``backend``, pointed at ``sim``."""
    if wire == "openai":
        return OpenAIProvider(
            name="p", base_url=sim.openai_base_url, model="sim", api_key="k", backend=backend
        )
    return AnthropicProvider(
        name="p", base_url=sim.anthropic_base_url, model="sim", api_key="k", backend=backend
    )
