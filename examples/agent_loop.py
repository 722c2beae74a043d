"""Agent loop recipe: typed tools, parallel tool calls, and ``run_agent``.

Runs on an embedded simulator, scripted to behave like a model that calls two tools in
parallel and then answers. Set ``ASYNCLLM_PROVIDERS=openai:gpt-4o-mini`` (and its API key)
to run it against a real model instead::

    python examples/agent_loop.py
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Literal

import anyio

from asyncllm import Client
from asyncllm.providers import AnthropicProvider
from asyncllm.testing import Simulator, Turn
from asyncllm.tools import run_agent, tool


@tool
async def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, object]:
    """Current weather in a city.

    Args:
        city: City name, e.g. "Oslo".
        unit: Temperature unit.
    """
    await anyio.sleep(0.01)  # an HTTP call in real life
    return {"city": city, "temperature": 21 if unit == "C" else 70, "sky": "clear"}


@tool
def local_time(city: str) -> str:
    """The local time in a city (a sync tool: it runs in a worker thread).

    Args:
        city: City name.
    """
    return {"Oslo": "14:05", "Tokyo": "22:05"}.get(city, "unknown")


@contextlib.asynccontextmanager
async def make_client() -> AsyncIterator[Client]:
    specs = os.environ.get("ASYNCLLM_PROVIDERS")
    if specs:
        async with Client(specs.split(","), timeout=120) as client:
            yield client
        return
    async with Simulator(output_tokens=8) as sim:
        sim.script(
            Turn.tool_calls(("get_weather", {"city": "Oslo"}), ("local_time", {"city": "Oslo"})),
            Turn.text("It is 14:05 in Oslo, 21 °C and clear."),
        )
        provider = AnthropicProvider(
            name="sim", base_url=sim.anthropic_base_url, model="sim", api_key="not-a-key"
        )
        async with Client(provider, log=False) as client:
            yield client


async def main() -> None:
    async with make_client() as client:
        run = await run_agent(
            client,
            "What time is it in Oslo, and what is the weather like?",
            [get_weather, local_time],
            max_turns=5,
            tool_timeout=10,
        )
    for m in run.messages:
        calls = ", ".join(c["function"]["name"] for c in m.tool_calls or ())
        print(f"{m.role:>9}: {m.text()[:70]}{'  -> ' + calls if calls else ''}")
    print(f"answer after {run.turns} turns: {run.text}")


if __name__ == "__main__":
    anyio.run(main)
