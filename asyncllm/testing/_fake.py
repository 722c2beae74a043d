"""A scripted, in-process provider for unit tests (no network, deterministic time).

It sleeps with ``anyio.sleep``, so under ``looptime`` (or any fake event-loop clock) a
"two second" latency costs no real time and every run is identical.
"""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import anyio
import orjson

from .._exceptions import ProviderError, StreamBroken
from .._types import ChatRequest, Chunk, FinishReason, RateLimitInfo, ToolCall, ToolCallDelta, Usage
from ..providers import BaseProvider
from ._latency import LatencyLike, to_latency

__all__ = ["FakeProvider", "FakeReply", "FakeScript"]


@dataclass(slots=True)
class FakeReply:
    """What the fake provider does for one call.

    Attributes:
        tokens: Text chunks to stream.
        latency: Seconds (or a distribution) before the response starts; ``None`` uses the
            provider's default.
        token_delay: Seconds between chunks; ``None`` uses the provider's default.
        error: Raised when the stream opens (after ``latency``), or, with ``fail_after``,
            after that many chunks. An error raised mid-stream reaches the caller as
            :class:`~asyncllm.StreamBroken` carrying the partial text, as a real driver's would.
        fail_after: Chunks to deliver before raising ``error``.
        finish_reason: Normalised finish reason of the last chunk.
        usage: Usage to report; default: estimated input tokens and one output token a chunk.
        rate_limits: Rate-limit info to expose on the stream.
        model: Model to report; default: the requested one.
        raw_finish_reason: The provider's own finish reason to report (default: the
            normalised one); ``finish_reason="content_filter", raw_finish_reason="refusal"``
            is a refusal, as Anthropic reports one.
        tool_calls: Tool calls to make after the text, each a :class:`~asyncllm.ToolCall`
            or a ``(name, arguments)`` pair (arguments a dict, or a string sent as is);
            the finish reason is then ``tool_calls``. See :meth:`call`.
    """

    tokens: Sequence[str] = ("Hello", ",", " world", "!")
    latency: LatencyLike | None = None
    token_delay: float | None = None
    error: Exception | None = None
    fail_after: int | None = None
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    rate_limits: RateLimitInfo | None = None
    model: str | None = None
    raw_finish_reason: str | None = None
    tool_calls: Sequence[ToolCall | tuple[str, Mapping[str, Any] | str]] = ()

    @classmethod
    def call(cls, *calls: tuple[str, Mapping[str, Any] | str], **kwargs: Any) -> FakeReply:
        """A reply calling tools: ``FakeReply.call(("get_weather", {"city": "Paris"}))``."""
        return cls(tokens=(), tool_calls=calls, **kwargs)

    @classmethod
    def json(cls, value: Any, **kwargs: Any) -> FakeReply:
        """A reply whose text is ``value`` as JSON (a string is sent as is)."""
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return cls(tokens=(text,), **kwargs)

    def calls_made(self, index: int) -> tuple[ToolCall, ...]:
        """The tool calls as :class:`~asyncllm.ToolCall` (ids ``call_fake<index>_<n>``)."""
        out = []
        for n, c in enumerate(self.tool_calls):
            if isinstance(c, ToolCall):
                out.append(c)
            else:
                name, args = c
                text = args if isinstance(args, str) else orjson.dumps(dict(args)).decode()
                out.append(ToolCall(f"call_fake{index}_{n}", name, text))
        return tuple(out)


FakeScript: TypeAlias = "Callable[[ChatRequest, int], FakeReply | str | Exception]"


class _FakeStream:
    __slots__ = ("_it", "model", "rate_limits")

    def __init__(self, model: str, rate_limits: RateLimitInfo | None, it: AsyncIterator[Chunk]):
        self.model = model
        self.rate_limits = rate_limits
        self._it = it

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._it


class FakeProvider(BaseProvider):
    """A provider that plays back scripted replies.

    Args:
        name: Provider name.
        model: Default model.
        replies: Replies in call order; the last one repeats. A string is a reply with that
            text as one chunk; an exception is a reply that raises it.
        handler: Instead of ``replies``: a function ``(request, call_index)`` returning a
            reply, a string or an exception.
        latency: Default latency (seconds or a distribution such as
            :func:`~asyncllm.testing.heavy_tail`).
        token_delay: Default seconds between chunks.
        seed: Seed of the latency sampler.
        kind: Pricing family to claim (default ``"fake"``).

    Attributes:
        calls: Every request received, in order.
        started / completed / cancelled / failed: Counters of streams.
        open_streams: Streams open right now (0 after every test that closes properly).
    """

    def __init__(
        self,
        name: str = "fake",
        *,
        model: str | None = "fake-model",
        replies: Sequence[FakeReply | str | Exception] | None = None,
        handler: FakeScript | None = None,
        latency: LatencyLike = 0.0,
        token_delay: float = 0.0,
        seed: int = 0,
        kind: str = "fake",
        local: bool = False,
    ) -> None:
        super().__init__(name, model=model)
        if replies is not None and handler is not None:
            raise ValueError("pass replies or handler, not both")
        self.kind = kind
        self.local = local
        self._replies = list(replies) if replies is not None else [FakeReply()]
        if not self._replies:
            raise ValueError("replies must not be empty")
        self._handler = handler
        self._latency = to_latency(latency)
        self._token_delay = token_delay
        self._rng = random.Random(seed)
        self.calls: list[ChatRequest] = []
        self.started = 0
        self.completed = 0
        self.cancelled = 0
        self.failed = 0
        self.open_streams = 0

    def _reply_for(self, request: ChatRequest, index: int) -> FakeReply:
        if self._handler is not None:
            r: FakeReply | str | Exception = self._handler(request, index)
        else:
            r = self._replies[min(index, len(self._replies) - 1)]
        if isinstance(r, str):
            return FakeReply(tokens=(r,))
        if isinstance(r, Exception):
            return FakeReply(tokens=(), error=r)
        return r

    def stream(self, request: ChatRequest) -> Any:
        return self._stream(request)

    @asynccontextmanager
    async def _stream(self, request: ChatRequest) -> AsyncIterator[_FakeStream]:
        model = self.model_for(request)
        index = len(self.calls)
        self.calls.append(request)
        reply = self._reply_for(request, index)
        latency = to_latency(reply.latency) if reply.latency is not None else self._latency
        delay = self._token_delay if reply.token_delay is None else reply.token_delay
        self.started += 1
        self.open_streams += 1
        done = False
        try:
            wait = latency.sample(self._rng)
            if wait > 0:
                await anyio.sleep(wait)
            if reply.error is not None and reply.fail_after is None:
                self.failed += 1
                done = True
                raise _bind(reply.error, self.name, model)

            async def chunks() -> AsyncGenerator[Chunk, None]:
                nonlocal done
                parts: list[str] = []
                for i, tok in enumerate(reply.tokens):
                    if reply.fail_after is not None and i >= reply.fail_after:
                        break
                    if i and delay > 0:
                        await anyio.sleep(delay)
                    parts.append(tok)
                    yield Chunk(text=tok)
                if reply.fail_after is not None and reply.error is not None:
                    self.failed += 1
                    done = True
                    err = _bind(reply.error, self.name, model)
                    if parts and not isinstance(err, StreamBroken):
                        raise StreamBroken(
                            str(getattr(err, "message", err)),
                            partial_text="".join(parts),
                            chunks_received=len(parts),
                            provider=self.name,
                            model=model,
                        ) from err
                    raise err
                calls = reply.calls_made(index)
                for n, call in enumerate(calls):
                    if (parts or n) and delay > 0:
                        await anyio.sleep(delay)
                    delta = ToolCallDelta(n, call.id, call.name, call.arguments)
                    yield Chunk(tool_calls=(delta,))
                usage = reply.usage or Usage(
                    input_tokens=request.estimated_input_tokens(),
                    output_tokens=len(parts) + len(calls),
                )
                finish = reply.finish_reason
                if calls and finish == "stop":
                    finish = "tool_calls"
                yield Chunk(
                    usage=usage,
                    finish_reason=finish,
                    raw_finish_reason=reply.raw_finish_reason or finish,
                )
                self.completed += 1
                done = True

            gen = chunks()
            try:
                yield _FakeStream(reply.model or model, reply.rate_limits, gen)
            finally:
                with anyio.CancelScope(shield=True):
                    await gen.aclose()
        finally:
            self.open_streams -= 1
            if not done:
                self.cancelled += 1

    def statistics(self) -> dict[str, Any]:
        return {
            "calls": len(self.calls),
            "started": self.started,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "failed": self.failed,
            "open_streams": self.open_streams,
        }


def _bind(error: Exception, provider: str, model: str) -> Exception:
    """A fresh copy of a scripted error, with provider and model filled in."""
    error = copy.copy(error)
    if isinstance(error, ProviderError):
        if not error.provider:
            error.provider = provider
        if error.model is None:
            error.model = model
    return error
