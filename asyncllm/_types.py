"""Core value types shared by every layer: requests, responses, stream chunks.

Everything here is a small slotted dataclass. Requests are frozen values (the cache key,
the limiter's token estimate and the budget's cost estimate are all computed from them);
responses are built once per attempt by the driver and then only annotated (``cached``,
``cost_usd``) by the layers above.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ._lazy import lazy_exports as _lazy_exports

__all__ = [
    "DEFAULT_OUTPUT_CAP",
    "ChatRequest",
    "Chunk",
    "FinishReason",
    "Message",
    "MessagesInput",
    "RateLimitInfo",
    "Response",
    "Role",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "output_cap",
]

Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool"]
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

#: Normalised finish reasons. Drivers map vendor values onto these and keep the
#: vendor's own word in ``Response.raw_finish_reason``.
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "other"]

#: Output tokens assumed for a request that sets no ``max_tokens``. The one default behind
#: :func:`output_cap`: the limiter's token reservation, the budget's worst case and the
#: ``max_tokens`` Anthropic's wire requires all use it, so they agree on what a request can
#: cost. A response longer than this (possible on OpenAI, which has no cap unless asked)
#: settles at its real size: set ``max_tokens`` for a hard bound.
DEFAULT_OUTPUT_CAP = 4096


@dataclass(slots=True, frozen=True)
class Message:
    """One chat message.

    Attributes:
        role: ``system``, ``developer``, ``user``, ``assistant`` or ``tool``.
        content: A string, or a tuple of OpenAI-style content parts
            (``{"type": "text", "text": ...}``, images, ...), passed through as given.
        name: Optional participant name.
        tool_call_id: For ``tool`` messages, the call this message answers.
        tool_calls: For ``assistant`` messages, OpenAI-style tool calls, passed through.
        is_error: For ``tool`` messages, the tool failed: Anthropic's wire marks the
            result ``is_error``; OpenAI's has no such mark (the content says so, see
            :func:`asyncllm.tools.tool_result`).
    """

    role: Role
    content: str | tuple[Mapping[str, Any], ...]
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    is_error: bool = False

    def text(self) -> str:
        """The message's text: the string, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(
            str(p.get("text", "")) for p in self.content if p.get("type") in ("text", None)
        )


@dataclass(slots=True, frozen=True)
class ChatRequest:
    """A provider-neutral chat request.

    ``model`` may be ``None``: the provider's default model is used. ``provider_options`` is
    merged into the wire body of the provider it is meant for (for example
    ``{"logprobs": True}`` or Anthropic's ``{"thinking": {...}}``); it is part of the cache
    key. ``metadata`` and ``tags`` are *not* sent and are not part of the cache key: tags
    select budgets, metadata travels to logs.
    """

    messages: tuple[Message, ...]
    model: str | None = None
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    response_format: Mapping[str, Any] | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    provider_options: Mapping[str, Any] | None = None
    tags: Mapping[str, str] | None = None
    metadata: Mapping[str, Any] | None = None

    def with_model(self, model: str | None) -> ChatRequest:
        """A copy of this request for another model (``None`` keeps it)."""
        if model is None or model == self.model:
            return self
        return dataclasses.replace(self, model=model)

    def prompt_chars(self) -> int:
        """Characters of prompt text: the base of token estimates."""
        n = len(self.system) if self.system else 0
        for m in self.messages:
            n += len(m.text())
        return n

    def estimated_input_tokens(self) -> int:
        """A cheap, conservative input-token estimate (about 3.5 characters a token).

        Used for limiter reservations and budget worst cases before the call; the real
        usage settles both afterwards.
        """
        return self.prompt_chars() * 2 // 7 + 4 * len(self.messages) + 3


def output_cap(request: ChatRequest, default: int | None = None) -> int:
    """The most output tokens ``request`` is assumed to produce.

    ``request.max_tokens`` when set, else ``default`` (a driver's or budget's own override),
    else :data:`DEFAULT_OUTPUT_CAP`.
    """
    if request.max_tokens is not None:
        return request.max_tokens
    return DEFAULT_OUTPUT_CAP if default is None else default


@dataclass(slots=True, frozen=True)
class Usage:
    """Token usage of one response."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, frozen=True)
class ToolCall:
    """A complete tool call requested by the model.

    Attributes:
        id: The call's id (answer it with a tool message carrying this id).
        name: The tool's name.
        arguments: The arguments as the model wrote them (a JSON object as text).
        parsed: When the request passed typed tools (:class:`asyncllm.tools.Tool`), the
            arguments validated into the tool's pydantic model; ``None`` otherwise or when
            they did not validate.
        error: Why the arguments did not validate (unknown tool, bad JSON, schema
            violation), when the request passed typed tools; ``None`` when they did.
    """

    id: str
    name: str
    arguments: str
    parsed: Any = field(default=None, compare=False, repr=False)
    error: str | None = field(default=None, compare=False)

    def arguments_dict(self) -> dict[str, Any]:
        """The arguments decoded as a JSON object.

        Raises:
            ValueError: the arguments are not a JSON object.
        """
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise ValueError(
                f"tool call {self.name!r} ({self.id}): arguments are not JSON: {exc}"
            ) from None
        if not isinstance(value, dict):
            raise ValueError(
                f"tool call {self.name!r} ({self.id}): arguments are not a JSON object"
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        """The call in the OpenAI message shape (``Message.tool_calls`` items)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments or "{}"},
        }


@dataclass(slots=True, frozen=True)
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with one ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True, frozen=True)
class RateLimitInfo:
    """What the provider's rate-limit headers said on one response.

    Any field may be ``None`` when the provider did not send it. ``reset_*`` are seconds
    from the moment the response was received.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None


@dataclass(slots=True, frozen=True)
class Chunk:
    """One event of a token stream.

    A chunk carries any of: a text delta, tool-call fragments, the final usage, the finish
    reason. ``text`` is always a string (empty when the chunk carries something else), so
    ``async for chunk in stream: print(chunk.text, end="")`` works for every chunk.
    """

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None


@dataclass(slots=True)
class Response:
    """A complete response.

    Attributes:
        text: The generated text.
        finish_reason: Normalised finish reason.
        usage: Token usage as billed by the provider, or ``None`` when the provider
            reported none (some servers never do; a stream cut before its usage chunk).
            Unknown usage is never taken as zero: the limiter keeps the whole token
            reservation and the budget books the worst case (see ``usage_estimated``).
        provider: Name of the provider (driver instance) that answered.
        model: Model that answered, as the provider reported it.
        latency: Seconds from sending the request to the last byte.
        time_to_first_token: Seconds from sending to the first content, or ``None``.
        cached: True when served from the cache.
        tool_calls: Tool calls requested by the model.
        raw_finish_reason: The provider's own finish reason.
        rate_limits: Rate-limit headers of the answering response, if any.
        cost_usd: Cost in USD when known (set by the cost layer).
        request_id: The logical request id asyncllm assigned.
        usage_estimated: True when the provider reported no usage, so ``cost_usd`` (and
            what the budget booked) is the request's worst case: its estimated input
            tokens plus :func:`output_cap` output tokens, at the model's price.
        chunks: For streamed responses, the text deltas as they arrived (used by the cache
            to replay a stream with its original boundaries); empty otherwise.
        parsed: With ``response_format=`` a pydantic model: the validated instance.
    """

    text: str
    finish_reason: FinishReason | None
    usage: Usage | None
    provider: str
    model: str
    latency: float = 0.0
    time_to_first_token: float | None = None
    cached: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    raw_finish_reason: str | None = None
    rate_limits: RateLimitInfo | None = None
    cost_usd: float | None = None
    request_id: str | None = None
    usage_estimated: bool = False
    chunks: tuple[str, ...] = field(default=(), repr=False)
    parsed: Any = field(default=None, repr=False, compare=False)

    def to_message(self) -> Message:
        """This answer as an ``assistant`` message, to append to the conversation.

        Tool calls are kept (in the neutral OpenAI shape that every driver translates, so
        the same message works for OpenAI- and Anthropic-format providers alike).
        """
        return Message(
            role="assistant",
            content=self.text,
            tool_calls=tuple(c.to_dict() for c in self.tool_calls) or None,
        )


MessagesInput: TypeAlias = (
    "str | Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]]"
)


# ``build_request`` and ``coerce_messages`` moved up (``_build.py``, ``_messages.py``) so the
# values import nothing above them; old imports of them from here still work, resolved on
# first use (an import at module level would be a circle).
__getattr__ = _lazy_exports(__name__, {"build_request": "._build", "coerce_messages": "._messages"})
