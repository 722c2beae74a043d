"""Shared pieces of the end-to-end tests: drivers on a simulator, leak checks, probes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from asyncllm import Client, ModelPrice, Prices, RateLimiter
from asyncllm.providers._anthropic import AnthropicProvider
from asyncllm.providers._openai import OpenAIProvider
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider
from asyncllm.testing import Simulator

#: A distinctive fake key: it must never show up anywhere but on the wire.
KEY = "sk-test-SECRET1234567890"

#: Prices of the simulated models (USD per million tokens), so budgets and costs are exact.
PRICES = {
    ("oa", "sim-oa"): ModelPrice(input_per_mtok=1.0, output_per_mtok=2.0),
    ("an", "sim-an"): ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0),
}


def prices() -> Prices:
    """Prices with overrides for the simulated models."""
    return Prices(PRICES)


def openai_compatible(sim: Simulator, name: str = "oa", model: str = "sim-oa") -> Any:
    """The native OpenAI-compatible driver pointed at ``sim``."""
    return OpenAICompatibleProvider(
        name=name, base_url=sim.openai_base_url, model=model, api_key=KEY
    )


def anthropic(sim: Simulator, name: str = "an", model: str = "sim-an") -> Any:
    """The native Anthropic driver pointed at ``sim``."""
    return AnthropicProvider(name=name, base_url=sim.anthropic_base_url, model=model, api_key=KEY)


def sdk_providers(sim: Simulator) -> list[Any]:
    """Both vendors on their official SDK backends."""
    return [
        OpenAIProvider(
            name="oa_sdk", base_url=sim.openai_base_url, model="sim-oa", api_key=KEY, backend="sdk"
        ),
        AnthropicProvider(
            name="an_sdk",
            base_url=sim.anthropic_base_url,
            model="sim-an",
            api_key=KEY,
            backend="sdk",
        ),
    ]


def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than the current one."""
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current}


def limiter_stats(client: Client) -> dict[str, dict[str, Any]]:
    """Each provider's limiter statistics."""
    return {n: p["limiter"] for n, p in client.statistics()["providers"].items()}


def assert_limiters_idle(client: Client) -> None:
    """No permit held, nobody waiting, every concurrency slot free."""
    for name, s in limiter_stats(client).items():
        if not s:
            continue  # no limiter on this provider
        assert s["in_flight"] == 0, (name, s)
        assert s["waiting"] == 0, (name, s)


def reserved_usd(budget_stats: dict[str, Any]) -> float:
    """Money still reserved (not settled) over every bucket of a budget."""
    return float(sum(b["reserved_usd"] for b in budget_stats["buckets"].values()))


class InFlightProbe:
    """Records the highest ``in_flight`` a limiter reported at each provider call.

    Called from a provider's handler, i.e. while the calling attempt holds its permit.
    """

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.samples: list[int] = []

    def sample(self) -> None:
        self.samples.append(int(self.limiter.statistics()["in_flight"]))

    @property
    def max(self) -> int:
        return max(self.samples, default=0)


def strings_reachable(root: object, *, depth: int = 14) -> Iterator[str]:
    """Every string (and decoded bytes) reachable from ``root`` through attributes, slots,
    containers and exception chains, to ``depth`` levels: what an error reporter that
    serialises an exception (or a debugger) could see."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, d = stack.pop()
        if id(obj) in seen or d > depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            yield obj
            continue
        if isinstance(obj, (bytes, bytearray)):
            yield bytes(obj).decode("latin-1")
            continue
        if isinstance(obj, (int, float, bool, type(None), type)) or callable(obj):
            continue
        children: list[object] = []
        if isinstance(obj, dict):
            children += list(obj.keys()) + list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += list(obj)
        if isinstance(obj, BaseException):
            children += [obj.__cause__, obj.__context__, *obj.args]
            children += list(getattr(obj, "exceptions", ()))
        for name in getattr(obj, "__dict__", {}):
            children.append(getattr(obj, name, None))
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                children.append(getattr(obj, name, None))
        stack.extend((c, d + 1) for c in children)
