"""Faults the :class:`~asyncllm.testing.Simulator` can inject, and the FIFO queue they wait in.

A fault is a value (:class:`Fault`); ``sim.inject(fault, times=n)`` appends it to a queue and
each subsequent request takes the fault at the head of the queue (one use), so
``inject(a); inject(b, times=2)`` makes the next three requests see ``a, b, b``.

Where a fault has an ``after`` parameter, it counts *content chunks* (text words, or tool
argument fragments): ``after=3`` acts once three content chunks went out. Status faults
(``rate_limit``, ``server_error``, ``unavailable``, ``overloaded``) with ``after`` set become
mid-stream errors: an Anthropic ``event: error`` or an OpenAI ``data: {"error": ...}`` line
after ``after`` chunks, then the stream ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = ["Fault", "FaultKind", "FaultQueue"]

FaultKind: TypeAlias = Literal[
    "rate_limit",
    "server_error",
    "unavailable",
    "overloaded",
    "drop",
    "malformed",
    "stall",
    "bad_request",
    "context_window",
    "auth",
    "content_filter",
    "stop",
    "truncated",
    "refusal",
    "empty",
    "invalid_json",
    "tool_call",
    "invalid_tool_args",
]


@dataclass(slots=True, frozen=True)
class Fault:
    """One injected failure. Build it with the class methods, e.g. ``Fault.rate_limit(2.0)``.

    Attributes:
        kind: What goes wrong.
        status: HTTP status of error faults (0 for faults that are not an error response).
        after: Content chunks sent before the fault acts (streaming faults), or ``None``.
        seconds: Stall duration (``stall``) or retry-after (``rate_limit``).
        message: Error message override.
    """

    kind: FaultKind
    status: int = 0
    after: int | None = None
    seconds: float = 0.0
    message: str | None = None

    def __post_init__(self) -> None:
        if self.after is not None and self.after < 0:
            raise ValueError("after must be >= 0")
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")

    @classmethod
    def rate_limit(cls, retry_after: float = 1.0, *, after: int | None = None) -> Fault:
        """HTTP 429 with ``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``.

        Args:
            retry_after: Seconds the client is told to wait.
            after: Send it mid-stream after this many chunks instead (no headers then).
        """
        return cls("rate_limit", status=429, seconds=retry_after, after=after)

    @classmethod
    def server_error(cls, status: int = 500, *, after: int | None = None) -> Fault:
        """A 5xx error (``server_error`` / Anthropic ``api_error``), optionally mid-stream."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status")
        return cls("server_error", status=status, after=after)

    @classmethod
    def unavailable(cls, *, after: int | None = None) -> Fault:
        """HTTP 503 service unavailable, optionally mid-stream."""
        return cls("unavailable", status=503, after=after)

    @classmethod
    def overloaded(cls, *, after: int | None = None) -> Fault:
        """HTTP 529 (Anthropic ``overloaded_error``; the same status on the OpenAI path)."""
        return cls("overloaded", status=529, after=after)

    @classmethod
    def drop_mid_stream(cls, after: int = 3) -> Fault:
        """Abort the TCP connection after ``after`` chunks: no terminating chunk, no [DONE].

        On a non-streamed request the headers and half of the JSON body go out first.
        """
        return cls("drop", after=after)

    @classmethod
    def malformed_chunk(cls, after: int = 2) -> Fault:
        """Send an SSE ``data:`` line of invalid JSON after ``after`` chunks, then carry on.

        On a non-streamed request the body is invalid JSON (status 200).
        """
        return cls("malformed", after=after)

    @classmethod
    def stall(cls, seconds: float, *, after: int | None = None) -> Fault:
        """Send nothing for ``seconds``: before the headers, or after ``after`` chunks."""
        return cls("stall", seconds=seconds, after=after)

    @classmethod
    def bad_request(cls, message: str = "Invalid request (injected fault).") -> Fault:
        """HTTP 400 ``invalid_request_error``."""
        return cls("bad_request", status=400, message=message)

    @classmethod
    def context_window(cls) -> Fault:
        """HTTP 400: OpenAI ``context_length_exceeded``; Anthropic "prompt is too long"."""
        return cls("context_window", status=400)

    @classmethod
    def auth(cls) -> Fault:
        """HTTP 401 authentication error."""
        return cls("auth", status=401)

    @classmethod
    def content_filter(cls, after: int = 1) -> Fault:
        """Status 200, but the output stops after ``after`` chunks.

        OpenAI: ``finish_reason: "content_filter"``; Anthropic: ``stop_reason: "refusal"``.
        """
        return cls("content_filter", after=after)

    # -- answer faults (status 200, a poor answer; see _sim_quality.py) ------------------

    @classmethod
    def truncated(cls, after: int | None = None) -> Fault:
        """The answer stops at the output limit after ``after`` chunks (default: half).

        OpenAI: ``finish_reason: "length"``; Anthropic: ``stop_reason: "max_tokens"``.
        """
        return cls("truncated", after=after)

    @classmethod
    def refusal(cls) -> Fault:
        """The model refuses: OpenAI ``message.refusal`` (finish reason ``stop``);
        Anthropic ``stop_reason: "refusal"``."""
        return cls("refusal")

    @classmethod
    def empty(cls) -> Fault:
        """An empty answer: no text, no tool call, finish reason ``stop``."""
        return cls("empty")

    @classmethod
    def invalid_json(cls) -> Fault:
        """Text that is not valid JSON (for requests that asked for JSON), finish ``stop``."""
        return cls("invalid_json")

    @classmethod
    def tool_call(cls) -> Fault:
        """A tool call (finish reason ``tool_calls`` / ``tool_use``), even when the request
        offered no tool (it then calls ``lookup(query)``)."""
        return cls("tool_call")

    @classmethod
    def invalid_tool_arguments(cls) -> Fault:
        """A tool call whose arguments are JSON but not an object: they fail any schema."""
        return cls("invalid_tool_args")

    @classmethod
    def finish(cls, reason: str) -> Fault:
        """An answer that ends with ``reason``: ``"stop"`` (an ordinary answer),
        ``"length"``, ``"tool_calls"``, ``"content_filter"`` or ``"refusal"``."""
        made = {
            "stop": lambda: cls("stop"),
            "length": cls.truncated,
            "tool_calls": cls.tool_call,
            "content_filter": lambda: cls.content_filter(after=1),
            "refusal": cls.refusal,
        }
        if reason not in made:
            raise ValueError(f"reason must be one of {sorted(made)}, got {reason!r}")
        return made[reason]()

    @property
    def is_error_response(self) -> bool:
        """True when the fault answers with an HTTP error status instead of a response."""
        return self.status >= 400 and self.after is None


@dataclass(slots=True)
class _Entry:
    fault: Fault
    left: int


class FaultQueue:
    """FIFO of faults with their remaining uses; every request takes one use of the head."""

    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: deque[_Entry] = deque()

    def push(self, fault: Fault, times: int) -> None:
        """Queue ``fault`` for the next ``times`` requests (after the ones queued before)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._q.append(_Entry(fault, times))

    def pop(self) -> Fault | None:
        """The fault for the request arriving now, or ``None``."""
        if not self._q:
            return None
        head = self._q[0]
        head.left -= 1
        if head.left <= 0:
            self._q.popleft()
        return head.fault

    def clear(self) -> None:
        """Forget every queued fault."""
        self._q.clear()

    def __len__(self) -> int:
        return sum(e.left for e in self._q)
