"""Redaction by value: a configured key of any shape never leaves in error text or logs."""

from __future__ import annotations

import traceback
from typing import Any

import pytest
from _quirks import BACKENDS, KINDS, quirk_server
from _quirks import make_provider as provider
from aiohttp import web
from structlog.testing import capture_logs

from asyncllm import AllProvidersFailed, AsyncLLMError, Client, RetryPolicy, redact_secrets
from asyncllm._exceptions import redact, register_secret, scrub_exception

# Plain keys that match no key *shape* (no "sk-", no "Bearer"): only their value gives
# them away. The short one is the example.
PLAIN = "abc123"
LONG = "plainkey4d8f2c1e9b7a"


async def echo_key(request: web.Request) -> web.StreamResponse:
    """A 401 (or a 503 for the path in the header) echoing the key, as providers do."""
    status = int(request.headers.get("x-status", "401"))
    sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    sent = sent.removeprefix("Bearer ")
    body = {"error": {"message": f"Incorrect API key provided: {sent}.", "type": "auth"}}
    return web.json_response(body, status=status)


def texts(exc: BaseException, logs: list[dict[str, Any]]) -> list[str]:
    out = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    out += [repr(a) for a in exc.args]
    for sub in getattr(exc, "exceptions", ()):
        out += [str(sub), repr(sub), *map(repr, sub.args)]
        out += ["".join(traceback.format_exception(sub))]
    out += [repr(e) for e in logs]
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("key", "status"), [(PLAIN, 401), (LONG, 401), (LONG, 503)])
async def test_an_echoed_plain_key_appears_in_no_error_text_or_event(
    key: str, status: int, kind: str, backend: str, stream: bool
) -> None:
    async with quirk_server(echo_key) as srv:
        # 401 fails at once with AuthenticationFailed; 503 falls back, giving a group.
        headers = {"X-Status": str(status)}
        primary = provider(kind, backend, srv, api_key=key, extra_headers=headers)
        other = provider(
            kind, backend, srv, api_key=key + "-2", name="second", extra_headers=headers
        )
        client = Client([primary, other], retry=RetryPolicy(max_retries=0))
        with capture_logs() as logs:
            async with client:
                with pytest.raises(AsyncLLMError) as info:
                    if stream:
                        async with client.stream("hi", max_tokens=5) as s:
                            async for _ in s:
                                pass
                    else:
                        await client.complete("hi", max_tokens=5)
    assert srv.seen, "the request went out"
    exc = info.value
    if status == 503:
        assert isinstance(exc, AllProvidersFailed) and len(exc.exceptions) == 2
    assert "Incorrect API key provided" in str(exc)  # the message is kept
    events = {e["event"] for e in logs}
    assert {"llm.attempt", "llm.request"} <= events
    for text in texts(exc, logs):
        assert key not in text


def test_the_structlog_processor_scrubs_registered_values() -> None:
    register_secret("zq-7-plain")
    event = redact_secrets(None, "info", {"event": "x", "body": "key zq-7-plain here"})
    assert event["body"] == "key [REDACTED] here"


def test_short_keys_are_scrubbed_as_whole_words_only() -> None:
    register_secret("q9z")
    assert redact("key q9z!") == "key [REDACTED]!"
    assert redact("aq9zb") == "aq9zb"  # inside a longer word: left alone (documented)


def test_scrub_reaches_causes_notes_groups_and_odd_exceptions() -> None:
    register_secret("cause-secret-77")

    class Odd(Exception):
        def __str__(self) -> str:
            return "odd cause-secret-77"

    inner = ValueError("bad cause-secret-77")
    inner.add_note("note cause-secret-77")
    outer = RuntimeError("outer")
    outer.__cause__ = inner
    inner.__context__ = Odd()
    group = ExceptionGroup("g", [outer, KeyError("cause-secret-77")])
    scrub_exception(group)
    rendered = "".join(traceback.format_exception(group))
    assert "cause-secret-77" not in rendered
    assert "[REDACTED]" in rendered
