"""The seam between the simulator's HTTP server and its two wire formats.

:class:`Wire` is what ``_sim_openai`` and ``_sim_anthropic`` implement: parse a body into a
:class:`~asyncllm.testing._sim_text.SimRequest`, render a plan as JSON or as SSE parts,
render errors in the vendor's exact shape, and name the vendor's rate-limit headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from ._sim_limits import LimitSnapshot
from ._sim_text import Plan, SimRequest

__all__ = ["ErrorKind", "StreamParts", "Wire", "WireError", "opt_int", "sse_data", "sse_event"]

ErrorKind: TypeAlias = Literal[
    "invalid_request",
    "authentication",
    "not_found",
    "rate_limit",
    "server",
    "unavailable",
    "overloaded",
    "context_window",
]


class WireError(Exception):
    """The request body is invalid: answered with a 400 in the vendor's error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class StreamParts:
    """An SSE response body in three parts (each already SSE-framed bytes).

    Attributes:
        prologue: Sent with the headers (OpenAI role chunk; Anthropic message_start,
            content_block_start, ping).
        content: One event per content chunk; faults with ``after=N`` act after N of these.
        epilogue: Everything after the content (finish, usage, [DONE] / message_stop).
    """

    prologue: bytes
    content: list[bytes]
    epilogue: bytes


class Wire(Protocol):
    """One vendor's wire format."""

    name: str
    request_id_header: str

    def parse(self, body: object) -> SimRequest:
        """A :class:`SimRequest` from the JSON body; raises :class:`WireError` when invalid."""
        ...

    def render_json(self, req: SimRequest, plan: Plan, resp_id: str, created: int) -> bytes:
        """The non-streamed response body."""
        ...

    def render_stream(self, req: SimRequest, plan: Plan, resp_id: str, created: int) -> StreamParts:
        """The streamed response body."""
        ...

    def error_body(
        self,
        kind: ErrorKind,
        message: str,
        *,
        request_id: str,
        limit: str = "",
        param: str | None = None,
    ) -> bytes:
        """An error body; ``limit`` names a refusing rate limit, ``param`` a bad field."""
        ...

    def stream_error(self, kind: ErrorKind, message: str, *, request_id: str) -> bytes:
        """A mid-stream error event, SSE-framed."""
        ...

    def malformed(self, resp_id: str) -> bytes:
        """An SSE event whose data is not valid JSON."""
        ...

    def limit_headers(self, snap: LimitSnapshot, wall_now: float) -> list[tuple[str, str]]:
        """The vendor's rate-limit headers."""
        ...


def sse_data(payload: bytes) -> bytes:
    """An unnamed SSE event (OpenAI style)."""
    return b"data: " + payload + b"\n\n"


def sse_event(name: bytes, payload: bytes) -> bytes:
    """A named SSE event (Anthropic style)."""
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


def opt_int(body: Mapping[str, Any], key: str, minimum: int = 1) -> int | None:
    """An optional integer field of the body, validated."""
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise WireError(f"{key}: expected an integer, got {type(v).__name__}", key)
    if v < minimum:
        raise WireError(f"{key}: must be >= {minimum}, got {v}", key)
    return v
