"""``asyncllm.Client``: the public entry point.

FOUNDATION VERSION: sequential fallback only. The orchestrator issue replaces the body of
``complete``/``stream`` with strategies (fallback, race, hedge), retries, deadlines, breakers
and fan-out; the public signatures below are the contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

from ._exceptions import AllProvidersFailed, ConfigurationError
from ._types import ChatRequest, Chunk, Response, build_request
from .providers import HttpResources, Provider, StreamAccumulator, resolve

__all__ = ["Client", "ClientStream"]


class ClientStream:
    """``async with client.stream(...) as s: async for chunk in s: ...``.

    After the stream is consumed, ``s.response`` is the assembled :class:`Response`.
    """

    def __init__(self, client: Client, request: ChatRequest) -> None:
        self._client = client
        self._request = request
        self._cm: Any = None
        self._provider: Provider | None = None
        self._acc = StreamAccumulator()
        self._inner: Any = None
        self.response: Response | None = None

    async def __aenter__(self) -> Self:
        provider = self._client._providers[0]
        self._provider = provider
        self._cm = provider.stream(self._request)
        self._inner = await self._cm.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._cm.__aexit__(exc_type, exc, tb)

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        assert self._inner is not None and self._provider is not None
        async for chunk in self._inner:
            self._acc.add(chunk)
            yield chunk
        self.response = self._acc.response(
            provider=self._provider.name,
            model=self._inner.model,
            rate_limits=self._inner.rate_limits,
        )


class Client:
    """An asyncllm client over one or more providers.

    Args:
        providers: A spec (``"openai:gpt-4o-mini"``), a driver, or a list of them, in
            priority order.

    Use as ``async with Client([...]) as client:``; the client owns one pooled HTTP
    client shared by all its drivers.
    """

    def __init__(
        self,
        providers: str | Provider | Sequence[str | Provider],
        *,
        max_connections: int = 512,
    ) -> None:
        specs: Sequence[str | Provider] = (
            [providers]
            if isinstance(providers, str) or not isinstance(providers, Sequence)
            else providers
        )
        if not specs:
            raise ConfigurationError("a Client needs at least one provider")
        self._providers: list[Provider] = [resolve(s) for s in specs]
        names = [p.name for p in self._providers]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"provider names must be unique, got {names}")
        self._http = HttpResources(max_connections=max_connections)
        self._open = False

    @property
    def providers(self) -> tuple[Provider, ...]:
        """The client's drivers, in priority order."""
        return tuple(self._providers)

    async def __aenter__(self) -> Self:
        for p in self._providers:
            await p.open(self._http)
        self._open = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every driver and the HTTP pools."""
        self._open = False
        for p in self._providers:
            await p.aclose()
        await self._http.aclose()

    async def complete(self, messages: object, **params: Any) -> Response:
        """Run a chat request to completion."""
        request = build_request(messages, params)
        errors: list[Exception] = []
        for p in self._providers:
            try:
                return await p.complete(request)
            except Exception as exc:
                if not getattr(exc, "retryable", False):
                    raise
                errors.append(exc)
        raise AllProvidersFailed("every provider failed", errors)

    def stream(self, messages: object, **params: Any) -> ClientStream:
        """Stream a chat request."""
        return ClientStream(self, build_request(messages, params))
