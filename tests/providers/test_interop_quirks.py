"""Third-party server quirks, each handled as the official SDKs handle it, on both backends."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from _quirks import (
    BACKENDS,
    KINDS,
    QuirkServer,
    answer,
    anthropic_stream,
    openai_stream,
    opened,
    quirk_server,
)
from _quirks import make_provider as provider
from aiohttp import web

from asyncllm import BadRequest, ContextWindowExceeded
from asyncllm._types import build_request
from asyncllm._version import USER_AGENT
from asyncllm.providers import Provider
from asyncllm.providers._anthropic import API_VERSION
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider

REQ = build_request("hi", {"max_tokens": 5})


async def stream_text(p: Provider) -> str:
    async with opened(p), p.stream(REQ) as s:
        return "".join([c.text async for c in s])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
async def test_an_event_stream_labelled_application_json_is_read_as_a_stream(
    kind: str, backend: str
) -> None:
    async def mislabelled(request: web.Request) -> web.StreamResponse:
        body = openai_stream("Hello") if kind == "openai" else anthropic_stream("Hello")
        return web.Response(body=body, content_type="application/json")

    async with quirk_server(mislabelled) as srv:
        assert await stream_text(provider(kind, backend, srv)) == "Hello"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
async def test_detail_error_bodies_keep_their_message(kind: str, backend: str) -> None:
    bodies = {
        "ctx": {"detail": "This model's maximum context length is 4096 tokens."},
        "validation": {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
    }

    async def fastapi_style(request: web.Request) -> web.StreamResponse:
        return web.json_response(bodies[request.headers["x-case"]], status=400)

    async with quirk_server(fastapi_style) as srv:
        for case, expected, text in [
            ("ctx", ContextWindowExceeded, "maximum context length is 4096"),
            ("validation", BadRequest, "body.messages: field required"),
        ]:
            p = provider(kind, backend, srv, extra_headers={"x-case": case})
            async with opened(p):
                with pytest.raises(BadRequest) as info:
                    await p.complete(REQ)
            assert type(info.value) is expected and text in str(info.value)


async def strict(request: web.Request) -> web.StreamResponse:
    """A server that rejects unknown fields, as strict OpenAI-compatible servers do."""
    body = await request.json()
    if "stream_options" in body:
        err = {"error": {"message": "Unrecognized request argument: stream_options"}}
        return web.json_response(err, status=400)
    return web.Response(body=openai_stream("Hello"), content_type="text/event-stream")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_stream_options_only_when_asked_on_compatible_servers(backend: str) -> None:
    async with quirk_server(strict) as srv:
        url = srv.base_url("openai")
        p = OpenAICompatibleProvider(base_url=url, model="m", backend=backend)
        assert await stream_text(p) == "Hello"
        asked = OpenAICompatibleProvider(
            base_url=url, model="m", backend=backend, stream_usage=True
        )
        with pytest.raises(BadRequest, match="stream_options"):
            await stream_text(asked)
        official = provider("openai", backend, srv)  # OpenAI's own API: usage by default
        with pytest.raises(BadRequest):
            await stream_text(official)
    sent = [("stream_options" in s.body) for s in srv.seen]
    assert sent == [False, True, True]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_anthropic_events_without_event_names(backend: str) -> None:
    async def unnamed(request: web.Request) -> web.StreamResponse:
        body = anthropic_stream("Hello", {"input_tokens": 3, "output_tokens": 2}, names=False)
        return web.Response(body=body, content_type="text/event-stream")

    async with quirk_server(unnamed) as srv:
        p = provider("anthropic", backend, srv)
        async with opened(p), p.stream(REQ) as s:
            chunks = [c async for c in s]
    assert "".join(c.text for c in chunks) == "Hello"
    usage = next(c.usage for c in chunks if c.usage)
    assert usage is not None and usage.output_tokens == 2


async def headers_sent(kind: str, **kw: Any) -> dict[str, dict[str, str]]:
    out = {}
    for backend in BACKENDS:
        async with quirk_server(
            answer("anthropic" if kind == "anthropic" else "openai", False, None)
        ) as srv:
            p = make(kind, backend, srv, **kw)
            async with opened(p):
                await p.complete(REQ)
        out[backend] = srv.seen[0].headers
    return out


def make(kind: str, backend: str, srv: QuirkServer, **kw: Any) -> Provider:
    if kind == "compatible":
        return OpenAICompatibleProvider(
            base_url=srv.base_url("openai"), model="m", backend=backend, **kw
        )
    return provider(kind, backend, srv, **kw)


async def test_both_anthropic_backends_send_the_sdks_api_version_and_one_user_agent() -> None:
    from anthropic._constants import ANTHROPIC_API_VERSION

    assert API_VERSION == ANTHROPIC_API_VERSION
    seen = await headers_sent("anthropic")
    for headers in seen.values():
        assert headers["anthropic-version"] == API_VERSION
        assert headers["user-agent"] == USER_AGENT
    # The key itself: the native backend sends x-api-key (what Anthropic documents); the
    # installed SDK sends it as a bearer token. Both reach Anthropic's API.
    assert seen["native"]["x-api-key"] == "quirk-key"
    assert "quirk-key" in seen["sdk"].get("x-api-key", seen["sdk"].get("authorization", ""))


async def test_both_openai_backends_send_one_user_agent() -> None:
    seen = await headers_sent("openai")
    for headers in seen.values():
        assert headers["user-agent"] == USER_AGENT
        assert headers["authorization"] == "Bearer quirk-key"


async def test_without_a_key_neither_backend_sends_authorization() -> None:
    seen = await headers_sent("compatible")
    for headers in seen.values():
        assert "authorization" not in headers and "x-api-key" not in headers


def test_detail_body_decoding_is_tolerant() -> None:
    from asyncllm.providers._errors import error_from_status

    err = error_from_status(
        422, orjson.dumps({"detail": {"message": "bad"}}), {}, provider="p", model=None,
        parse_limits=lambda h: None,
    )  # fmt: skip
    assert "bad" in str(err)
