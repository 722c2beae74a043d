"""A tiny loopback server for the quirks of third-party OpenAI/Anthropic-style servers.

Each test gives a handler (an aiohttp handler) for every POST; the server records what it
received (path, headers, JSON body), so tests can compare what both backends sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from asyncllm.providers import HttpResources, Provider
from asyncllm.providers._anthropic import AnthropicProvider
from asyncllm.providers._openai import OpenAIProvider

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KINDS = ("openai", "anthropic")
BACKENDS = ("native", "sdk")


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class QuirkServer:
    url: str
    seen: list[Seen] = field(default_factory=list)

    def base_url(self, kind: str) -> str:
        return self.url + ("/v1" if kind == "openai" else "")


@asynccontextmanager
async def quirk_server(handler: Handler) -> AsyncIterator[QuirkServer]:
    """Serve ``handler`` for every POST on a free loopback port."""
    srv = QuirkServer("")

    async def record(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        srv.seen.append(
            Seen(request.path, {k.lower(): v for k, v in request.headers.items()}, body)
        )
        return await handler(request)

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        await runner.cleanup()


def make_provider(
    kind: str, backend: str, srv: QuirkServer, *, api_key: str | None = "quirk-key", **kw: Any
) -> Provider:
    """An OpenAI or Anthropic driver pointed at ``srv``."""
    cls = OpenAIProvider if kind == "openai" else AnthropicProvider
    return cls(base_url=srv.base_url(kind), api_key=api_key, model="m", backend=backend, **kw)


@asynccontextmanager
async def opened(provider: Provider) -> AsyncIterator[Provider]:
    http = HttpResources()
    await provider.open(http)
    try:
        yield provider
    finally:
        await provider.aclose()
        await http.aclose()


def sse(events: list[tuple[str | None, dict[str, Any] | str]]) -> bytes:
    """SSE bytes for ``(event name or None, data)`` pairs."""
    out = b""
    for name, data in events:
        if name is not None:
            out += b"event: " + name.encode() + b"\n"
        payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
        out += b"data: " + payload + b"\n\n"
    return out


def openai_completion(text: str = "Hello", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }
    if usage is not None:
        obj["usage"] = usage
    return obj


def openai_stream(text: str = "Hello", usage: dict[str, Any] | None = None) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events: list[tuple[str | None, dict[str, Any] | str]] = [
        (None, chunk({"role": "assistant", "content": text}, None)),
        (None, chunk({}, "stop")),
    ]
    if usage is not None:
        events.append((None, {"id": "c1", "model": "m", "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return sse(events)


def anthropic_message(text: str = "Hello", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if usage is not None:
        obj["usage"] = usage
    return obj


def anthropic_stream(
    text: str = "Hello", usage: dict[str, Any] | None = None, *, names: bool = True
) -> bytes:
    start: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
    }
    delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
    if usage is not None:
        start["usage"] = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
        delta["usage"] = {"output_tokens": usage["output_tokens"]}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", delta),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse([(n if names else None, d) for n, d in events])


def answer(kind: str, stream: bool, usage: dict[str, Any] | None, text: str = "Hello") -> Handler:
    """A handler giving a well-formed answer (with ``usage`` as given, None: no usage)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if stream:
            body = openai_stream(text, usage) if kind == "openai" else anthropic_stream(text, usage)
            return web.Response(body=body, headers={"content-type": "text/event-stream"})
        obj = openai_completion(text, usage) if kind == "openai" else anthropic_message(text, usage)
        return web.json_response(obj)

    return handle
