"""Servers that misbehave in ways the simulator does not: both backends must agree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from _drivertest import KEY, consume, outcome, req
from aiohttp import web

from asyncllm.providers import HttpResources
from asyncllm.providers._openai import OpenAIProvider

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def both(handler: Handler, run: Callable[[OpenAIProvider], Awaitable[Any]]) -> Any:
    got = {}
    async with server(handler) as url:
        for backend in ("native", "sdk"):
            http = HttpResources()
            p = OpenAIProvider(base_url=url, api_key=KEY, model="m", backend=backend)
            await p.open(http)
            try:
                got[backend] = await run(p)
            finally:
                await http.aclose()
    assert got["native"] == got["sdk"], got
    return got["native"]


def chunk(text: str) -> bytes:
    obj = {
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def json_error(request: web.Request) -> web.StreamResponse:
    return web.json_response({"error": {"message": "engine exploded", "type": "server_error"}})


async def json_not_error(request: web.Request) -> web.StreamResponse:
    return web.json_response({"hello": "world"})


async def no_end_marker(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(chunk("Hello") + chunk(" there"))
    await resp.write_eof()  # a clean end, but no finish reason and no [DONE]
    return resp


async def finish_without_done(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    done = {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    await resp.write(chunk("Hi") + b"data: " + orjson.dumps(done) + b"\n\n")
    await resp.write_eof()  # complete answer, clean close, but no usage and no [DONE]
    return resp


async def comments_and_crlf(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    done = {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    for part in (
        b": keep-alive\r\n\r\n",
        chunk("A").replace(b"\n", b"\r\n"),
        b"data: " + orjson.dumps(done) + b"\r\n\r\ndata: [DONE]\r\n\r\n",
    ):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("http://127.0.0.1:9/elsewhere")


async def test_json_error_instead_of_stream() -> None:
    got = await both(json_error, lambda p: outcome(consume(p, req())))
    assert got[:3] == ("error", "ServerError", None)


async def test_json_instead_of_stream() -> None:
    got = await both(json_not_error, lambda p: outcome(consume(p, req())))
    assert got[:2] == ("error", "MalformedResponse")


async def test_stream_ending_without_end_marker() -> None:
    got = await both(no_end_marker, lambda p: outcome(consume(p, req())))
    assert got[:2] == ("error", "StreamBroken")
    assert got[-3:] == ("Hello there", 2, "ConnectionFailed")


async def test_clean_close_after_finish_reason_is_complete() -> None:
    got = await both(finish_without_done, lambda p: outcome(consume(p, req())))
    assert got[:4] == ("ok", "Hi", "length", "length")


async def test_keepalive_comments_and_crlf() -> None:
    got = await both(comments_and_crlf, lambda p: outcome(consume(p, req())))
    assert got[:4] == ("ok", "A", "stop", "stop")


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_redirects_are_not_followed(backend: str) -> None:
    async with server(redirect) as url:
        http = HttpResources()
        p = OpenAIProvider(base_url=url, api_key=KEY, model="m", backend=backend)
        await p.open(http)
        try:
            got = await outcome(p.complete(req()))
        finally:
            await http.aclose()
    assert got[0] == "error" and got[2] == 302, got


def _body(payload: bytes, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=payload, content_type=content_type)

    return handler


@pytest.mark.parametrize(
    ("payload", "content_type", "expected"),
    [
        (b"hello, not json", "text/plain", "MalformedResponse"),
        (b"[1, 2, 3]", "application/json", "MalformedResponse"),
        (b'{"choices": "nope"}', "application/json", "MalformedResponse"),
        (
            b'{"error": {"message": "engine exploded", "type": "server_error"}}',
            "application/json",
            "ServerError",
        ),
    ],
)
async def test_odd_complete_bodies_after_a_200(
    payload: bytes, content_type: str, expected: str
) -> None:
    """A 200 whose body is not a chat completion: a typed error, the same on both backends."""
    got = await both(_body(payload, content_type), lambda p: outcome(p.complete(req())))
    assert got[:2] == ("error", expected)
