"""Rate-limit and retry headers: OpenAI durations, Anthropic timestamps, Retry-After forms."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from asyncllm import RateLimitInfo
from asyncllm.providers._headers import (
    anthropic_rate_limits,
    openai_rate_limits,
    parse_duration,
    parse_timestamp,
    retry_after,
)

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("250ms", 0.25),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
        ("20", 20.0),
        ("7.66s", 7.66),
        ("1m30s", 90.0),
        ("15us", 15e-6),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "5 minutes", "1x", "s", "1s junk"])
def test_parse_duration_rejects_garbage(text: str | None) -> None:
    assert parse_duration(text) is None


def test_openai_headers_case_insensitive() -> None:
    h = CIMultiDict(
        {
            "X-RateLimit-Limit-Requests": "500",
            "X-RateLimit-Remaining-Requests": "499",
            "X-RateLimit-Reset-Requests": "120ms",
            "X-RateLimit-Limit-Tokens": "30000",
            "X-RateLimit-Remaining-Tokens": "29000",
            "X-RateLimit-Reset-Tokens": "6m0s",
        }
    )
    assert openai_rate_limits(h) == RateLimitInfo(
        limit_requests=500,
        remaining_requests=499,
        reset_requests=pytest.approx(0.12),  # type: ignore[arg-type]
        limit_tokens=30000,
        remaining_tokens=29000,
        reset_tokens=360.0,
    )


def test_openai_headers_absent_or_partial() -> None:
    assert openai_rate_limits(CIMultiDict()) is None
    info = openai_rate_limits(CIMultiDict({"x-ratelimit-remaining-tokens": "12"}))
    assert info == RateLimitInfo(remaining_tokens=12)


def test_anthropic_headers_timestamps_become_seconds_from_now() -> None:
    h = CIMultiDict(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2025-06-15T15:06:50Z",
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "39000",
            "anthropic-ratelimit-tokens-reset": "2025-06-15T15:07:40+00:00",
        }
    )
    now = datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC).timestamp()
    info = anthropic_rate_limits(h, now)
    assert info == RateLimitInfo(
        limit_requests=50,
        remaining_requests=49,
        reset_requests=10.0,
        limit_tokens=40000,
        remaining_tokens=39000,
        reset_tokens=60.0,
    )


def test_anthropic_input_token_bucket_stands_in() -> None:
    h = CIMultiDict(
        {
            "anthropic-ratelimit-input-tokens-limit": "1000",
            "anthropic-ratelimit-input-tokens-remaining": "10",
        }
    )
    info = anthropic_rate_limits(h)
    assert info is not None
    assert (info.limit_tokens, info.remaining_tokens) == (1000, 10)
    assert anthropic_rate_limits(CIMultiDict()) is None


def test_past_timestamp_is_zero_and_garbage_is_none() -> None:
    assert parse_timestamp("2000-01-01T00:00:00Z", NOW) == 0.0
    assert parse_timestamp("not a time", NOW) is None
    assert parse_timestamp("2025-01-01T00:00:00", NOW) is None  # no zone: unknowable


def test_retry_after_ms_wins() -> None:
    assert retry_after(CIMultiDict({"retry-after-ms": "1500", "retry-after": "2"})) == 1.5


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after(CIMultiDict({"retry-after": "3"})) == 3.0
    when = datetime.fromtimestamp(NOW + 30, UTC)
    h = CIMultiDict({"Retry-After": format_datetime(when, usegmt=True)})
    assert retry_after(h, NOW) == pytest.approx(30.0)


@pytest.mark.parametrize("value", ["", "soon", "-"])
def test_retry_after_garbage_is_none(value: str) -> None:
    assert retry_after(CIMultiDict({"retry-after": value})) is None
    assert retry_after(CIMultiDict()) is None
