"""Simulator server behaviour: rate limits, keys, disconnects, latency, raw HTTP/1.1."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from asyncllm.testing import Mixture, Simulator

USER: Any = [{"role": "user", "content": "Tell me something."}]


def input_tokens(chars: int, messages: int) -> int:
    return math.ceil(chars / 4) + 3 * messages


async def test_rpm_enforced_with_headers() -> None:
    async with (
        Simulator(rpm=5, period=1.0) as sim,
        openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="t", max_retries=0) as oai,
    ):
        remaining = []
        for _ in range(5):
            raw = await oai.chat.completions.with_raw_response.create(model="m", messages=USER)
            assert raw.headers["x-ratelimit-limit-requests"] == "5"
            remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
        assert remaining == [4, 3, 2, 1, 0]
        with pytest.raises(openai.RateLimitError) as e:
            await oai.chat.completions.create(model="m", messages=USER)
        h = e.value.response.headers
        assert 0 < int(h["retry-after-ms"]) <= 200 and h["retry-after"] == "1"
        assert h["x-ratelimit-remaining-requests"] == "0"
        assert h["x-ratelimit-reset-requests"].endswith(("ms", "s"))
        assert e.value.type == "requests"
        assert sim.stats.rate_limited == 1 and sim.stats.completed == 5


async def test_tpm_enforced_and_anthropic_headers() -> None:
    per_request = input_tokens(len(USER[0]["content"]), 1) + 8
    async with (
        Simulator(output_tokens=8, tpm=per_request * 3, period=1.0) as sim,
        anthropic.AsyncAnthropic(
            base_url=sim.anthropic_base_url, api_key="t", max_retries=0
        ) as ant,
    ):
        for i in range(3):
            raw = await ant.messages.with_raw_response.create(
                model="c", max_tokens=50, messages=USER
            )
            h = raw.headers
            assert h["anthropic-ratelimit-tokens-limit"] == str(per_request * 3)
            assert int(h["anthropic-ratelimit-tokens-remaining"]) == per_request * (2 - i)
            assert h["anthropic-ratelimit-input-tokens-limit"] == str(per_request * 3)
            assert "anthropic-ratelimit-output-tokens-remaining" in h
            reset = datetime.fromisoformat(h["anthropic-ratelimit-tokens-reset"])
            assert reset.tzinfo is not None
            assert 0 <= (reset - datetime.now(UTC)).total_seconds() <= 3
            assert int(h["anthropic-ratelimit-requests-limit"]) >= 1000  # not enforced
        with pytest.raises(anthropic.RateLimitError) as e:
            await ant.messages.create(model="c", max_tokens=50, messages=USER)
        assert "tokens" in e.value.message
        assert 0 < int(e.value.response.headers["retry-after-ms"]) <= 1000


async def test_unlimited_still_sends_plausible_headers(sim: Simulator) -> None:
    body = {"model": "m", "messages": USER}
    async with aiohttp.ClientSession() as s, s.post(sim.openai_url, json=body) as r:
        assert r.status == 200
        assert int(r.headers["x-ratelimit-limit-requests"]) >= 1000
        assert int(r.headers["x-ratelimit-remaining-tokens"]) > 1000
        assert r.headers["x-request-id"].startswith("req_")


async def test_require_api_key() -> None:
    async with Simulator(require_api_key="sk-right-key-123") as sim:
        async with openai.AsyncOpenAI(
            base_url=sim.openai_base_url, api_key="sk-wrong-key-999", max_retries=0
        ) as bad:
            with pytest.raises(openai.AuthenticationError) as e:
                await bad.chat.completions.create(model="m", messages=USER)
            assert "sk-wrong" not in e.value.response.text
        async with anthropic.AsyncAnthropic(
            base_url=sim.anthropic_base_url, api_key="sk-right-key-123", max_retries=0
        ) as good:
            m = await good.messages.create(model="c", max_tokens=5, messages=USER)
            assert m.stop_reason == "max_tokens"
        body = {"model": "c", "max_tokens": 5, "messages": USER}
        async with aiohttp.ClientSession() as s:
            async with s.post(
                sim.anthropic_url, json=body, headers={"x-api-key": "sk-right-key-123"}
            ) as r:
                assert r.status == 200
            async with s.post(sim.anthropic_url, json=body, headers={"x-api-key": "x"}) as r:
                assert r.status == 401
                err = await r.json()
                assert err["type"] == "error"
                assert err["error"]["type"] == "authentication_error"


async def test_context_window_limit() -> None:
    async with (
        Simulator(context_window=10) as sim,
        openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="t", max_retries=0) as oai,
    ):
        await oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.BadRequestError) as e:
            await oai.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x" * 40}]
            )
        assert e.value.code == "context_length_exceeded"


async def test_client_disconnect_mid_stream_is_counted() -> None:
    async with Simulator(output_tokens=50, token_delay=0.02) as sim:
        body = {"model": "m", "messages": USER, "stream": True}
        async with aiohttp.ClientSession() as s, s.post(sim.openai_url, json=body) as r:
            async for line in r.content:
                if line.startswith(b"data: {") and b'"content":"' in line:
                    break
            # Leaving the block before the end closes the connection.
        st = await sim.wait_for(lambda st: st.disconnected == 1, timeout=2)
        assert st.completed == 0 and st.in_flight == 0 and st.connections == 0

        async with openai.AsyncOpenAI(
            base_url=sim.openai_base_url, api_key="t", max_retries=0
        ) as oai:
            stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
            async for _ in stream:
                break
            await stream.close()
            await sim.wait_for(lambda st: st.disconnected == 2, timeout=2)


async def test_client_disconnect_during_latency_is_counted() -> None:
    async with Simulator(latency=5.0) as sim:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(asyncio.TimeoutError):
                body = {"model": "m", "messages": USER}
                async with asyncio.timeout(0.1), s.post(sim.openai_url, json=body):
                    pass
        await sim.wait_for(lambda st: st.disconnected == 1 and st.in_flight == 0, timeout=2)


@pytest.mark.looptime
async def test_latency_and_token_delay_on_the_fake_clock() -> None:
    loop = asyncio.get_running_loop()
    async with Simulator(latency=2.0, token_delay=0.5, output_tokens=5) as sim:
        body: dict[str, Any] = {"model": "m", "messages": USER}
        async with aiohttp.ClientSession() as s:
            t0 = loop.time()
            async with s.post(sim.openai_url, json=body) as r:
                await r.read()
            # Non-streamed: latency + (chunks - 1) * token_delay before the body.
            assert loop.time() - t0 == pytest.approx(2.0 + 4 * 0.5)
            t0 = loop.time()
            stamps = []
            async with s.post(sim.openai_url, json={**body, "stream": True}) as r:
                async for line in r.content:
                    if b'"content":"' in line and b'"content":""' not in line:
                        stamps.append(loop.time() - t0)
            assert stamps == pytest.approx([2.0, 2.5, 3.0, 3.5, 4.0])


@pytest.mark.looptime
async def test_latency_distribution_is_seeded() -> None:
    loop = asyncio.get_running_loop()
    mix = Mixture(((0.5, 1.0), (0.5, 7.0)))

    async def latencies(seed: int) -> list[float]:
        out = []
        async with Simulator(latency=mix, seed=seed) as sim, aiohttp.ClientSession() as s:
            for _ in range(12):
                t0 = loop.time()
                async with s.post(sim.openai_url, json={"model": "m", "messages": USER}) as r:
                    await r.read()
                out.append(round(loop.time() - t0, 6))
        return out

    a = await latencies(3)
    assert a == await latencies(3)
    assert set(a) == {1.0, 7.0}


async def test_keep_alive_pipelining_and_chunked_bodies(sim: Simulator) -> None:
    body = json.dumps({"model": "m", "messages": USER}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    chunked = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        writer.write(head + body + chunked)  # two requests in one write (pipelined)
        for _ in range(2):
            status = await reader.readline()
            assert status == b"HTTP/1.1 200 OK\r\n"
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            payload = json.loads(await reader.readexactly(length))
            assert payload["object"] == "chat.completion"
    finally:
        writer.close()
        await writer.wait_closed()
    assert sim.stats.connections_total == 1 and sim.stats.completed == 2


async def test_bad_requests_get_vendor_error_shapes(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(sim.openai_url, data=b"{not json") as r:
            assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
        async with s.post(sim.openai_url, json={"messages": USER}) as r:
            assert r.status == 400 and (await r.json())["error"]["param"] == "model"
        async with s.post(sim.anthropic_url, json={"model": "c", "messages": USER}) as r:
            err = await r.json()
            assert r.status == 400 and "max_tokens" in err["error"]["message"]
        async with s.get(sim.anthropic_url) as r:
            assert r.status == 405
        async with s.post(sim.base_url + "/v1/nothing", json={}) as r:
            assert r.status == 404
        async with s.get(sim.openai_base_url + "/models") as r:
            assert r.status == 200 and (await r.json())["object"] == "list"
    assert sim.stats.by_path["/v1/chat/completions"] == 2
    assert sim.stats.errors == 5


async def test_requests_are_recorded_without_secrets_in_repr(
    sim: Simulator, oai: openai.AsyncOpenAI
) -> None:
    with pytest.raises(LookupError):
        _ = sim.last_request
    await oai.chat.completions.create(model="m", messages=USER, max_completion_tokens=7)
    rec = sim.last_request
    assert (rec.method, rec.path) == ("POST", "/v1/chat/completions")
    assert rec.json()["max_completion_tokens"] == 7
    assert rec.headers["authorization"] == "Bearer test"
    assert "test" not in repr(rec).replace("/v1", "")
    assert list(sim.requests) == [rec]
    async with Simulator(record=0) as quiet, aiohttp.ClientSession() as s:
        async with s.post(quiet.openai_url, json={"model": "m", "messages": USER}) as r:
            assert r.status == 200
        assert len(quiet.requests) == 0 and quiet.stats.received == 1


@pytest.mark.parametrize(
    ("version", "connection", "keeps_open"),
    [
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "keep-alive", True),
        ("HTTP/1.0", "", False),
        ("HTTP/1.0", "keep-alive", True),
    ],
)
async def test_connection_persistence(
    sim: Simulator, version: str, connection: str, keeps_open: bool
) -> None:
    body = json.dumps({"model": "m", "messages": USER}).encode()
    conn_header = f"connection: {connection}\r\n" if connection else ""
    head = (
        f"POST /v1/chat/completions {version}\r\nhost: x\r\n{conn_header}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        writer.write(head + body)
        async with asyncio.timeout(5):
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            if keeps_open:
                await sim.wait_for(lambda st: st.completed == 1)
                assert sim.stats.connections == 1
            else:
                assert await reader.read() == b""  # the server closed it
    finally:
        writer.close()
        await writer.wait_closed()
    assert sim.stats.disconnected == 0


async def test_close_with_streams_in_flight_is_prompt_and_clean() -> None:
    sim = await Simulator(output_tokens=1000, token_delay=0.05).start()
    async with aiohttp.ClientSession() as s:
        body = {"model": "m", "messages": USER, "stream": True}
        async with s.post(sim.openai_url, json=body) as r:
            await r.content.readline()
            assert sim.stats.in_flight == 1
            async with asyncio.timeout(2):
                await sim.aclose()
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
    assert sim.stats.in_flight == 0 and sim.stats.connections == 0
    assert sim.stats.disconnected == 0  # the server closed, not the client
    await sim.aclose()  # idempotent


async def test_a_handler_bug_is_a_500_not_a_reset(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(conn: object, req: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(sim._handler, "_handle", boom)
    body = {"model": "m", "messages": USER}
    async with aiohttp.ClientSession() as s, s.post(sim.openai_url, json=body) as r:
        assert r.status == 500
        assert (await r.json())["error"]["type"] == "server_error"
    assert "request handler failed" in caplog.text
    assert sim.stats.in_flight == 0
