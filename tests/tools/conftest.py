"""Fixtures of the tools tests: a simulator, and a client on each wire format and backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _tooltest import CASES, IDS, make_provider

from asyncllm import Client
from asyncllm.testing import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(output_tokens=4) as s:
        yield s


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def client(sim: Simulator, case: tuple[str, str]) -> AsyncIterator[Client]:
    async with Client(make_provider(sim, *case), log=False, metrics=False) as c:
        yield c


@pytest.fixture
def body(sim: Simulator) -> Callable[[int], dict[str, Any]]:
    """The JSON body of the ``n``-th latest request the simulator received."""

    def get(n: int = -1) -> dict[str, Any]:
        import json

        return json.loads(sim.requests[n].body)  # type: ignore[no-any-return]

    return get
