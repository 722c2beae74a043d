"""Fixtures of the simulator tests: a running simulator and SDK clients bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from asyncllm.testing import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(output_tokens=8) as s:
        yield s


@pytest.fixture
async def oai(sim: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=sim.openai_base_url, api_key="test", max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def ant(sim: Simulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=sim.anthropic_base_url, api_key="test", max_retries=0
    ) as client:
        yield client
