"""Status codes, error bodies and transport exceptions mapped onto asyncllm's tree."""

from __future__ import annotations

from types import ModuleType

import aiohttp
import httpx2
import orjson
import pytest
from multidict import CIMultiDict

from asyncllm import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamBroken,
)
from asyncllm.providers._errors import (
    broken,
    error_from_payload,
    error_from_status,
    transport_error,
)
from asyncllm.providers._headers import anthropic_rate_limits, openai_rate_limits


def status(code: int, body: object, **headers: str) -> ProviderError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return error_from_status(
        code,
        raw,
        CIMultiDict(headers),
        provider="p",
        model="m",
        parse_limits=openai_rate_limits,
    )


def oai(message: str, type_: str = "invalid_request_error", code: str | None = None) -> object:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anth(message: str, type_: str) -> object:
    return {"type": "error", "error": {"type": type_, "message": message}}


@pytest.mark.parametrize(
    ("code", "body", "cls"),
    [
        (400, oai("bad"), BadRequest),
        (404, oai("no such model", code="model_not_found"), BadRequest),
        (422, b"unprocessable", BadRequest),
        (401, oai("Incorrect API key", code="invalid_api_key"), AuthenticationFailed),
        (403, anth("forbidden", "permission_error"), AuthenticationFailed),
        (408, b"", ProviderTimeout),
        (500, oai("boom", "server_error"), ServerError),
        (502, b"<html>bad gateway</html>", ServerError),
        (503, anth("Service unavailable", "api_error"), ServerError),
        (529, anth("Overloaded", "overloaded_error"), Overloaded),
        (500, anth("Overloaded", "overloaded_error"), Overloaded),
        (400, oai("max context", code="context_length_exceeded"), ContextWindowExceeded),
        (
            400,
            anth("prompt is too long: 300 tokens > 200", "invalid_request_error"),
            ContextWindowExceeded,
        ),
        (400, oai("flagged", code="content_filter"), ContentFiltered),
        (400, oai("Your request was rejected by our content management policy"), ContentFiltered),
    ],
)
def test_status_mapping(code: int, body: object, cls: type[ProviderError]) -> None:
    err = status(code, body)
    assert type(err) is cls
    assert err.status_code == code
    assert (err.provider, err.model) == ("p", "m")
    assert err.retryable is cls.retryable


def test_429_reads_retry_after_and_limits() -> None:
    err = status(
        429,
        oai("slow down", "requests", "rate_limit_exceeded"),
        **{"retry-after": "2", "retry-after-ms": "1500", "x-ratelimit-remaining-requests": "0"},
    )
    assert isinstance(err, RateLimited)
    assert err.retry_after == 1.5
    assert err.rate_limits is not None and err.rate_limits.remaining_requests == 0
    assert "slow down" in str(err)


def test_anthropic_429_limits() -> None:
    err = error_from_status(
        429,
        orjson.dumps(anth("rate", "rate_limit_error")),
        CIMultiDict({"retry-after": "4", "anthropic-ratelimit-requests-remaining": "0"}),
        provider="a",
        model=None,
        parse_limits=anthropic_rate_limits,
    )
    assert isinstance(err, RateLimited) and err.retry_after == 4.0
    assert err.rate_limits is not None and err.rate_limits.remaining_requests == 0


def test_keys_in_error_bodies_are_redacted() -> None:
    err = status(401, oai("Incorrect API key provided: sk-abcdef1234567890XYZ"))
    assert "sk-abcdef1234567890XYZ" not in str(err)
    assert "sk-abcdef1234567890XYZ" not in repr(err)


@pytest.mark.parametrize(
    ("body", "cls"),
    [
        (anth("Overloaded", "overloaded_error"), Overloaded),
        (anth("Internal", "api_error"), ServerError),
        (oai("boom", "server_error"), ServerError),
        (oai("Rate limit", "requests", "rate_limit_exceeded"), RateLimited),
        (anth("prompt is too long", "invalid_request_error"), ContextWindowExceeded),
        ({"error": "weird"}, ServerError),
    ],
)
def test_payload_mapping(body: object, cls: type[ProviderError]) -> None:
    err = error_from_payload(body, provider="p", model="m")
    assert type(err) is cls
    assert err.status_code is None


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (TimeoutError(), ProviderTimeout),
        (aiohttp.SocketTimeoutError("read"), ProviderTimeout),
        (aiohttp.ServerDisconnectedError(), ConnectionFailed),
        (aiohttp.ClientPayloadError("incomplete"), ConnectionFailed),
        (ConnectionResetError("reset"), ConnectionFailed),
        (httpx2.ReadTimeout("slow"), ProviderTimeout),
        (httpx2.ConnectError("refused"), ConnectionFailed),
        (httpx2.RemoteProtocolError("peer closed"), ConnectionFailed),
        (orjson.JSONDecodeError("bad", "x", 0), MalformedResponse),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), MalformedResponse),
    ],
)
def test_transport_mapping(exc: Exception, cls: type[ProviderError]) -> None:
    assert type(transport_error(exc, provider="p", model="m")) is cls


def test_broken_only_after_content() -> None:
    err = ServerError("x", provider="p", model="m")
    assert broken(err, partial_text="", chunks_received=0) is err
    sb = broken(err, partial_text="hello", chunks_received=2)
    assert isinstance(sb, StreamBroken)
    assert (sb.partial_text, sb.chunks_received, sb.provider) == ("hello", 2, "p")
    assert "ServerError" in str(sb)


def _resp(status: int, **headers: str) -> httpx2.Response:
    return httpx2.Response(
        status, headers=headers, request=httpx2.Request("POST", "http://127.0.0.1:9/v1/x")
    )


def test_sdk_exceptions() -> None:
    import anthropic
    import openai

    from asyncllm.providers._sdk_wire import sdk_error

    def m(exc: BaseException, sdk: ModuleType) -> ProviderError:
        return sdk_error(exc, sdk, provider="p", model="m", parse_limits=openai_rate_limits)

    req = httpx2.Request("POST", "http://127.0.0.1:9/v1/x")
    rl = m(
        openai.RateLimitError(
            "slow", response=_resp(429, **{"retry-after-ms": "250"}), body={"message": "slow"}
        ),
        openai,
    )
    assert isinstance(rl, RateLimited) and rl.retry_after == 0.25
    assert isinstance(m(openai.APITimeoutError(req), openai), ProviderTimeout)
    assert isinstance(m(openai.APIConnectionError(request=req), openai), ConnectionFailed)
    in_stream = openai.APIError("boom", req, body={"message": "boom", "type": "server_error"})
    assert isinstance(m(in_stream, openai), ServerError)
    no_key = openai.OpenAIError("Missing credentials. Please pass an `api_key`")
    assert type(m(no_key, openai)) is AuthenticationFailed
    over = anthropic.OverloadedError(
        "Overloaded",
        response=_resp(529),
        body={"type": "error", "error": {"type": "overloaded_error"}},
    )
    assert isinstance(m(over, anthropic), Overloaded)
    event = anthropic.APIStatusError(
        "err",
        response=_resp(200),
        body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    got = m(event, anthropic)
    assert isinstance(got, Overloaded) and got.status_code is None
    assert isinstance(m(httpx2.RemoteProtocolError("peer closed"), anthropic), ConnectionFailed)
