"""Reading rate-limit and retry headers (shared by every driver and backend).

Works on anything with a case-insensitive ``get`` (aiohttp's ``CIMultiDictProxy``,
``httpx2.Headers``) or on a plain dict with lower-case keys.

- OpenAI: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; resets are Go-style
  durations (``1s``, ``6m0s``, ``250ms``, ``1h2m3.5s``).
- Anthropic: ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``; resets are
  RFC 3339 timestamps, turned into seconds from now.
- ``retry-after-ms`` (milliseconds) wins over ``retry-after`` (seconds or an HTTP date).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TypeAlias

from .._types import RateLimitInfo

__all__ = [
    "Headers",
    "anthropic_rate_limits",
    "openai_rate_limits",
    "parse_duration",
    "parse_timestamp",
    "retry_after",
]


#: A case-insensitive header mapping (aiohttp's ``CIMultiDictProxy``, ``httpx2.Headers``).
Headers: TypeAlias = Mapping[str, str]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


# Reset headers repeat a small set of values ("6ms", "1s", "59.9s"): parsing each once
# keeps two regex scans off every response. Bounded, so hostile values cannot grow it.
_DURATIONS: dict[str, float | None] = {}
_DURATIONS_MAX = 1024


def parse_duration(value: str | None) -> float | None:
    """Seconds in a Go-style duration (``6m0s``, ``250ms``) or a bare number of seconds.

    Returns ``None`` for anything else rather than raising: a header we cannot read must
    never fail a response.
    """
    if not value:
        return None
    try:
        return _DURATIONS[value]
    except KeyError:
        pass
    seconds = _parse_duration(value.strip())
    if len(_DURATIONS) >= _DURATIONS_MAX:
        _DURATIONS.clear()
    _DURATIONS[value] = seconds
    return seconds


def _parse_duration(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    total = 0.0
    pos = 0
    for m in _DURATION_PART.finditer(value):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(value) or pos == 0:
        return None
    return total


def parse_timestamp(value: str | None, now: float | None = None) -> float | None:
    """Seconds from ``now`` (default: the wall clock) until an RFC 3339 timestamp (>= 0)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return parse_duration(value)
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _int(value: str | None) -> int | None:
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return None


def openai_rate_limits(headers: Headers, now: float | None = None) -> RateLimitInfo | None:
    """OpenAI's ``x-ratelimit-*`` headers, or ``None`` when the response carries none."""
    get = headers.get
    limit_requests = get("x-ratelimit-limit-requests")
    limit_tokens = get("x-ratelimit-limit-tokens")
    remaining_requests = get("x-ratelimit-remaining-requests")
    remaining_tokens = get("x-ratelimit-remaining-tokens")
    if not (limit_requests or limit_tokens or remaining_requests or remaining_tokens):
        return None
    return RateLimitInfo(
        limit_requests=_int(limit_requests),
        remaining_requests=_int(remaining_requests),
        reset_requests=parse_duration(get("x-ratelimit-reset-requests")),
        limit_tokens=_int(limit_tokens),
        remaining_tokens=_int(remaining_tokens),
        reset_tokens=parse_duration(get("x-ratelimit-reset-tokens")),
    )


def anthropic_rate_limits(headers: Headers, now: float | None = None) -> RateLimitInfo | None:
    """Anthropic's ``anthropic-ratelimit-*`` headers, or ``None`` when there are none.

    The combined ``tokens`` bucket is used; when only the input/output buckets are sent,
    the input bucket stands in for it (it is the one prompts exhaust).
    """
    get = headers.get
    limit_requests = get("anthropic-ratelimit-requests-limit")
    limit_tokens = get("anthropic-ratelimit-tokens-limit")
    prefix = "anthropic-ratelimit-tokens-"
    if limit_tokens is None:
        alt = get("anthropic-ratelimit-input-tokens-limit")
        if alt is not None:
            limit_tokens, prefix = alt, "anthropic-ratelimit-input-tokens-"
    remaining_requests = get("anthropic-ratelimit-requests-remaining")
    if not (limit_requests or limit_tokens or remaining_requests):
        return None
    return RateLimitInfo(
        limit_requests=_int(limit_requests),
        remaining_requests=_int(remaining_requests),
        reset_requests=parse_timestamp(get("anthropic-ratelimit-requests-reset"), now),
        limit_tokens=_int(limit_tokens),
        remaining_tokens=_int(get(prefix + "remaining")),
        reset_tokens=parse_timestamp(get(prefix + "reset"), now),
    )


def retry_after(headers: Headers, now: float | None = None) -> float | None:
    """The server's requested wait in seconds (``retry-after-ms``, then ``retry-after``)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
