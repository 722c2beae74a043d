"""A lean HTTP/1.1 server connection (``asyncio.Protocol``) for the simulator.

Why not ``aiohttp.web``: the simulator must (1) cost little per request, because the
fast-path benchmark runs it in a separate process and drives thousands of requests a second
through it, and every microsecond the server spends is noise in the client's numbers;
(2) abort a response at an exact byte (a dropped stream has no terminating chunk, a stall
sends nothing at all); and (3) notice at once when the client goes away mid-response (that
is how tests prove that cancellation closed the connection). A protocol object gets
``connection_lost`` the moment the socket closes and writes straight to the transport, with
no per-request middleware, request objects or header multidicts. Control is the main win;
cost is a smaller one: ``benchmarks/bench_simulator.py`` measures server CPU per request
(``/proc/PID/stat``, keep-alive JSON requests, 2-core box) at ~85-105 us against
~115-145 us for a bare ``aiohttp.web`` handler doing less work (no limits, rate-limit
headers or stats): 1.3-1.4x less. A 16-chunk SSE stream costs ~115-130 us.
What it supports is what LLM clients use:
HTTP/1.1 keep-alive, pipelined requests (served in order), ``Content-Length`` and
``chunked`` request bodies, ``Expect: 100-continue``, chunked (SSE) and fixed-length
responses, and write flow control.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Connection", "HttpRequest", "ServerHooks"]

log = logging.getLogger("asyncllm.testing.simulator")

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024

_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Site Overloaded",
}

_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        reason = _REASONS.get(status, "Error")
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n".encode()
    return line


@dataclass(slots=True)
class HttpRequest:
    """One parsed request. Header names are lower-case bytes."""

    method: str
    path: str
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool


class ServerHooks(Protocol):
    """What a connection needs from the server that owns it."""

    def handle(self, conn: Connection, req: HttpRequest) -> Awaitable[None]:
        """Serve one request."""
        ...

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        """Start a task the server tracks (and cancels and awaits on shutdown)."""
        ...

    def connection_opened(self, conn: Connection) -> None:
        """A client connected."""
        ...

    def connection_closed(self, conn: Connection, mid_response: bool) -> None:
        """The connection is gone; ``mid_response`` when the client left during a response."""
        ...


class _ParseError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body at ``start``: ``(body, end offset)``, or ``None`` while partial."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError:
            raise _ParseError(400, "bad chunk size") from None
        pos = eol + 2
        if size == 0:
            # Skip trailers up to the blank line.
            end = buf.find(b"\r\n\r\n", pos - 2)
            return (bytes(out), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        if len(out) > _MAX_BODY:
            raise _ParseError(413, "body too large")
        pos += size + 2


class Connection(asyncio.Protocol):
    """One client connection: parses requests and hands them, one at a time, to the server."""

    def __init__(self, hooks: ServerHooks) -> None:
        self._hooks = hooks
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._responding = False  # a request is being served and its response is unfinished
        self._aborted_by_us = False
        self._closed = False
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._continue_sent = False
        self._stream_head = b""
        self._wrote = False  # bytes of the current response went out

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._hooks.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._task is None:
            self._next()

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        mid = self._responding and not self._aborted_by_us
        self._responding = False
        self._wake()
        self._hooks.connection_closed(self, mid)
        if self._task is not None and mid:
            self._task.cancel()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    # -- request parsing --------------------------------------------------------------------

    def _next(self) -> None:
        """Parse the next complete request in the buffer, if any, and start serving it."""
        if self._closed:
            return
        try:
            req = self._parse()
        except _ParseError as e:
            self.send(e.status, [("content-type", "text/plain")], str(e).encode(), close=True)
            return
        if req is None:
            return
        self._responding = True
        self._task = self._hooks.spawn(self._serve(req))

    def _parse(self) -> HttpRequest | None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                raise _ParseError(431, "request head too large")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ", 2)
        except ValueError:
            raise _ParseError(400, "bad request line") from None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise _ParseError(400, "bad header line")
            headers[name.strip().lower()] = value.strip()
        body_start = end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            got = _dechunk(buf, body_start)
            if got is None:
                self._maybe_continue(headers)
                return None
            body, stop = got
        else:
            try:
                length = int(headers.get(b"content-length", b"0"))
            except ValueError:
                raise _ParseError(400, "bad content-length") from None
            if length < 0 or length > _MAX_BODY:
                raise _ParseError(413, "body too large")
            stop = body_start + length
            if len(buf) < stop:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[body_start:stop])
        del buf[:stop]
        self._continue_sent = False
        conn = headers.get(b"connection", b"").lower()
        keep = b"close" not in conn if version == b"HTTP/1.1" else b"keep-alive" in conn
        path = target.split(b"?", 1)[0].decode("latin-1")
        return HttpRequest(method.decode("latin-1"), path, headers, body, keep)

    def _maybe_continue(self, headers: dict[bytes, bytes]) -> None:
        if not self._continue_sent and headers.get(b"expect", b"").lower() == b"100-continue":
            self._continue_sent = True
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _serve(self, req: HttpRequest) -> None:
        self._wrote = False
        try:
            await self._hooks.handle(self, req)
        except Exception:
            log.exception("simulator: request handler failed")
            if not self._wrote:  # nothing sent yet: a proper 500, the connection survives
                body = b'{"error":{"message":"simulator internal error","type":"server_error"}}'
                self.send(500, [("content-type", "application/json")], body)
            elif self._responding:
                self.abort()
        finally:
            self._task = None
            self._responding = False
        if self._closed:
            return
        if not req.keep_alive:
            self.close()
        elif self._buf:
            self._next()

    # -- responses --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is gone (either side closed it)."""
        return self._closed

    def _write(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._wrote = True
            self._transport.write(data)

    def _wake(self) -> None:
        d = self._drain
        if d is not None and not d.done():
            d.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._paused and not self._closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
            self._drain = None

    @staticmethod
    def _head(status: int, headers: list[tuple[str, str]], extra: str) -> bytes:
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
        return _status_line(status) + (lines + extra + "\r\n").encode("latin-1")

    def send(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, close: bool = False
    ) -> None:
        """Send a complete fixed-length response (and close the connection if ``close``)."""
        extra = f"content-length: {len(body)}\r\n"
        if close:
            extra += "connection: close\r\n"
        self._write(self._head(status, headers, extra) + body)
        self._responding = False
        if close:
            self.close()

    def send_partial(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Promise ``len(body)`` bytes, send half of them, then abort the connection."""
        head = self._head(status, headers, f"content-length: {len(body)}\r\n")
        self._write(head + body[: len(body) // 2])
        self.abort()

    def start_stream(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Begin a chunked response. The head goes out with the first chunk (one write)."""
        self._stream_head = self._head(status, headers, "transfer-encoding: chunked\r\n")

    def write_chunk(self, data: bytes) -> None:
        """Send one chunk of a chunked response."""
        head, self._stream_head = self._stream_head, b""
        self._write(head + b"%x\r\n%b\r\n" % (len(data), data) if data else head)

    def end_stream(self, last: bytes = b"") -> None:
        """Send ``last`` and the terminating zero-length chunk."""
        head, self._stream_head = self._stream_head, b""
        tail = b"%x\r\n%b\r\n0\r\n\r\n" % (len(last), last) if last else b"0\r\n\r\n"
        self._write(head + tail)
        self._responding = False

    def abort(self) -> None:
        """Reset the connection now: no more bytes, no terminating chunk."""
        self._aborted_by_us = True
        if self._transport is not None and not self._closed:
            self._transport.abort()

    def close(self) -> None:
        """Close the connection after the buffered bytes are sent."""
        if self._transport is not None and not self._closed:
            self._transport.close()
