"""Helpers shared by the cache tests: a counting upstream built on FakeProvider, and a
pickle payload that proves whether unpickling ran code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio

from asyncllm import ChatRequest, Response
from asyncllm._build import build_request
from asyncllm.testing import FakeProvider

ROUTE = (("fake", "fake", "fake-model"),)


def req(prompt: object = "What is 2+2?", **params: Any) -> ChatRequest:
    """A deterministic request (temperature 0) unless told otherwise."""
    params.setdefault("temperature", 0)
    return build_request(prompt, params)


def caller(provider: FakeProvider, request: ChatRequest) -> Callable[[], Awaitable[Response]]:
    """The ``call`` the orchestrator would hand the cache: one provider call per invocation."""

    async def call() -> Response:
        return await provider.complete(request)

    return call


def opener(
    provider: FakeProvider, request: ChatRequest
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """The ``open_stream`` the orchestrator would hand the cache."""

    def open_stream() -> AbstractAsyncContextManager[Any]:
        return provider.stream(request)

    return open_stream


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` for up to 5 s (a counter exposes no event to wait on)."""
    with anyio.fail_after(5):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.005)


#: What :class:`Exploit` payloads ran when unpickled (tests expect it to stay empty).
TRIGGERED: list[str] = []


def mark(what: str) -> None:
    """Record that a payload ran."""
    TRIGGERED.append(what)


class Exploit:
    """Unpickling this calls :func:`mark`: proof that code ran."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (mark, ("code ran",))
