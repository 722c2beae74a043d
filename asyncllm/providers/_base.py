"""The provider protocol every driver implements, and the pieces drivers share.

A driver's primitive is an **async token stream**: ``provider.stream(request)`` is an async
context manager. Entering it sends the request and waits for the response headers (so HTTP
errors, 429s and their Retry-After surface at ``__aenter__``); iterating it yields
:class:`~asyncllm.Chunk` events; leaving it, by any path including cancellation of the
consumer, closes the HTTP response. A complete response is a consumed stream, or the
provider's non-streaming endpoint where that is cheaper, with identical results.

Nothing outside ``providers/`` imports a concrete driver: the orchestrator, limits, cache
and telemetry only know this protocol.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._exceptions import ConfigurationError
from .._types import ChatRequest, Chunk, FinishReason, RateLimitInfo, Response, ToolCall, Usage

if TYPE_CHECKING:
    from ._http import HttpResources

__all__ = [
    "BaseProvider",
    "Provider",
    "ProviderStream",
    "StreamAccumulator",
]


@runtime_checkable
class ProviderStream(Protocol):
    """What ``async with provider.stream(request) as s`` gives: an async iterator of chunks.

    ``rate_limits`` holds what the response's rate-limit headers said (set on entry).
    ``model`` is the model that answers, as far as the provider said so far.
    """

    rate_limits: RateLimitInfo | None
    model: str

    def __aiter__(self) -> AsyncIterator[Chunk]: ...


@runtime_checkable
class Provider(Protocol):
    """A provider driver.

    Attributes:
        name: Instance name, unique within a client (``"openai"``, ``"vllm-a"``). Limits,
            breakers, statistics and budgets are keyed on it.
        kind: Wire/pricing family: ``"openai"``, ``"anthropic"``, ``"openai_compatible"``,
            ``"fake"``...
        default_model: Model used when a request names none.
        local: True for self-hosted servers (Ollama, vLLM): they cost nothing by default.
    """

    name: str
    kind: str
    default_model: str | None
    local: bool

    async def open(self, http: HttpResources) -> None:
        """Bind to the client's pooled HTTP resources. Called by ``Client.__aenter__``."""
        ...

    async def aclose(self) -> None:
        """Release what :meth:`open` bound (the pool itself belongs to the client)."""
        ...

    def stream(self, request: ChatRequest) -> AbstractAsyncContextManager[ProviderStream]:
        """Open a token stream for ``request``."""
        ...

    async def complete(self, request: ChatRequest) -> Response:
        """Run ``request`` to completion."""
        ...


class StreamAccumulator:
    """Folds stream chunks into a :class:`Response`. Cheap: one append per chunk.

    Used by :meth:`BaseProvider.complete`, by ``Client.stream`` (``s.response``) and by the
    cache, so a streamed and a non-streamed answer compare equal field by field.
    """

    __slots__ = (
        "_parts",
        "_started",
        "_tools",
        "finish_reason",
        "first_token_at",
        "raw_finish_reason",
        "usage",
    )

    def __init__(self, started: float | None = None) -> None:
        self._started = time.perf_counter() if started is None else started
        self._parts: list[str] = []
        self._tools: dict[int, list[str | None]] = {}
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None
        self.raw_finish_reason: str | None = None
        self.first_token_at: float | None = None

    @property
    def chunks_received(self) -> int:
        """How many text chunks arrived."""
        return len(self._parts)

    @property
    def text(self) -> str:
        """The text so far."""
        return "".join(self._parts)

    def add(self, chunk: Chunk) -> None:
        """Fold one chunk in."""
        if chunk.text:
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            self._parts.append(chunk.text)
        if chunk.tool_calls:
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            for d in chunk.tool_calls:
                slot = self._tools.setdefault(d.index, [None, None, ""])
                if d.id:
                    slot[0] = d.id
                if d.name:
                    slot[1] = d.name
                slot[2] = (slot[2] or "") + d.arguments
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason is not None and self.raw_finish_reason != "refusal":
            # (A refusal stays one: OpenAI ends a refused stream with finish_reason "stop".)
            self.finish_reason = chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason

    def response(
        self, *, provider: str, model: str, rate_limits: RateLimitInfo | None = None
    ) -> Response:
        """The :class:`Response` for everything folded in so far."""
        now = time.perf_counter()
        tools = tuple(
            ToolCall(id=s[0] or "", name=s[1] or "", arguments=s[2] or "")
            for _, s in sorted(self._tools.items())
        )
        return Response(
            text="".join(self._parts),
            finish_reason=self.finish_reason,
            usage=self.usage,
            provider=provider,
            model=model,
            latency=now - self._started,
            time_to_first_token=(
                None if self.first_token_at is None else self.first_token_at - self._started
            ),
            tool_calls=tools,
            raw_finish_reason=self.raw_finish_reason,
            rate_limits=rate_limits,
            chunks=tuple(self._parts),
        )


class BaseProvider:
    """Shared behaviour for drivers: model resolution and ``complete`` as a consumed stream.

    Subclasses implement :meth:`stream` and may override :meth:`complete` with the
    provider's non-streaming endpoint when that is cheaper.
    """

    kind: str = "base"
    local: bool = False

    def __init__(self, name: str, *, model: str | None = None) -> None:
        self.name = name
        self.default_model = model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.default_model!r})"

    def model_for(self, request: ChatRequest) -> str:
        """The model ``request`` runs on here.

        Raises:
            ConfigurationError: when neither the request nor the provider names a model.
        """
        model = request.model or self.default_model
        if not model:
            raise ConfigurationError(
                f"provider {self.name!r} has no default model and the request names none; "
                f"write it as '{self.kind}:MODEL' or pass model=..."
            )
        return model

    async def open(self, http: HttpResources) -> None:
        """Bind to pooled HTTP resources (no-op by default)."""

    async def aclose(self) -> None:
        """Release resources (no-op by default)."""

    def stream(self, request: ChatRequest) -> AbstractAsyncContextManager[ProviderStream]:
        """Open a token stream; subclasses implement it."""
        raise NotImplementedError

    async def complete(self, request: ChatRequest) -> Response:
        """Consume :meth:`stream` into a :class:`Response`."""
        acc = StreamAccumulator()
        async with self.stream(request) as s:
            async for chunk in s:
                acc.add(chunk)
            return acc.response(provider=self.name, model=s.model, rate_limits=s.rate_limits)

    def statistics(self) -> dict[str, Any]:
        """Driver-level counters (none by default)."""
        return {}
