"""A lean Server-Sent Events parser that works on bytes.

Native drivers feed it whatever the socket delivered and get back ``(event, data)`` pairs,
where ``data`` is the raw ``bytes`` payload (ready for ``orjson.loads``, no decode step).
It follows the WHATWG event-stream rules that matter for LLM APIs:

- lines end with ``\\n``, ``\\r\\n`` or a lone ``\\r`` (also when a ``\\r\\n`` pair is split
  across two reads);
- an event is dispatched at a blank line; several ``data:`` lines join with ``\\n``;
- one space after the colon is dropped; lines starting with ``:`` are comments (keep-alive
  pings) and are skipped; ``id:`` and ``retry:`` are ignored;
- a block without any ``data:`` line dispatches nothing.

The common case (one ``data: {...}`` line per event, ``\\n`` endings) takes a fast path
of one ``split`` and one slice per event.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["SSEEvent", "SSEParser", "looks_like_sse"]

#: ``(event name or None, data bytes)``.
SSEEvent: TypeAlias = tuple[str | None, bytes]

_DATA_PREFIX = b"data: "
_FIELD_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")


def looks_like_sse(head: bytes) -> bool:
    """Whether a body that begins with ``head`` is an event stream, whatever its
    ``Content-Type`` says (some servers label their streams ``application/json``; the
    official SDKs parse a requested stream as SSE regardless of the label)."""
    return head.lstrip().startswith(_FIELD_STARTS)


class SSEParser:
    """Incremental SSE parser: ``feed(bytes)`` returns the events completed so far.

    Incomplete trailing input is kept until more bytes arrive. Per the specification, an
    unterminated event at the end of the stream is not dispatched (``pending`` tells
    whether such bytes are left).
    """

    __slots__ = ("_buf", "_cr")

    def __init__(self) -> None:
        self._buf = b""
        # The previous feed ended in "\r": a "\n" starting the next feed belongs to it.
        self._cr = False

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered."""
        return bool(self._buf.strip())

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Add ``data`` and return every event it completes, in order."""
        if self._cr:
            self._cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:
            self._cr = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + data if self._buf else data
        if b"\n\n" not in buf:
            self._buf = buf
            return []
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        events: list[SSEEvent] = []
        for block in blocks:
            if block.startswith(_DATA_PREFIX) and b"\n" not in block:
                events.append((None, block[6:]))
            elif block:
                event = _parse_block(block)
                if event is not None:
                    events.append(event)
        return events


def _parse_block(block: bytes) -> SSEEvent | None:
    """The slow path: several lines, named events, comments, odd spacing."""
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # blank, or ":" comment / keep-alive
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace") or None
        # "id" and "retry" carry nothing an LLM driver needs; unknown fields are ignored.
    if not data:
        return None
    return name, data[0] if len(data) == 1 else b"\n".join(data)
