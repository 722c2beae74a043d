"""An explicit ``Response`` ⇄ JSON codec for shared cache backends. Never pickle.

A shared Redis is written by other processes, possibly other people: whatever it holds must
not be able to run code in the client. So entries are plain JSON in a fixed, versioned shape,
and :func:`decode_response` checks every field (types, ranges, the finish reason, that the
stored chunks add up to the text) before building a :class:`~asyncllm.Response`. Anything
else raises :class:`InvalidCacheEntry`, which the cache counts, logs (key prefix only) and
treats as a miss.

What is stored: text, chunk boundaries, tool calls, finish reason, usage, provider, model,
latency and time to first token of the original call. What is not: rate-limit headers, the
request id, the cost (a hit costs nothing) and anything from the request: the key is a hash,
and no prompt text or credential is ever written.
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson
from aiocache.serializers import BaseSerializer

from .._exceptions import InvalidCacheEntry
from .._types import Response, ToolCall, Usage

__all__ = [
    "ENTRY_FORMAT",
    "InvalidCacheEntry",
    "ResponseSerializer",
    "decode_response",
    "encode_response",
]

#: The ``format`` tag of every stored entry; the version follows in ``v``.
ENTRY_FORMAT: Final = "asyncllm.response"
_VERSION: Final = 1
_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "other"})
_USAGE = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_FIELDS = frozenset(
    {
        "format",
        "v",
        "text",
        "chunks",
        "tool_calls",
        "finish_reason",
        "raw_finish_reason",
        "usage",
        "provider",
        "model",
        "latency",
        "time_to_first_token",
    }
)
#: Entries larger than this are refused on read (a hostile entry must not exhaust memory).
MAX_ENTRY_BYTES: Final = 16 * 1024 * 1024
_MAX_COUNT = 2**53


def encode_response(response: Response) -> bytes:
    """Encode ``response`` as a JSON entry.

    Raises:
        ValueError: when the response cannot be stored (for example a string that is not
            valid Unicode, or no finish reason: incomplete answers are never stored).
    """
    if response.finish_reason is None:
        raise ValueError("an incomplete response (no finish reason) is never stored")
    u = response.usage
    doc = {
        "format": ENTRY_FORMAT,
        "v": _VERSION,
        "text": response.text,
        "chunks": list(response.chunks),
        "tool_calls": [[t.id, t.name, t.arguments] for t in response.tool_calls],
        "finish_reason": response.finish_reason,
        "raw_finish_reason": response.raw_finish_reason,
        # null: the provider reported no usage (never stored as zeros).
        "usage": (
            None
            if u is None
            else [u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens]
        ),
        "provider": response.provider,
        "model": response.model,
        "latency": response.latency,
        "time_to_first_token": response.time_to_first_token,
    }
    try:
        return orjson.dumps(doc)
    except TypeError as exc:
        raise ValueError(f"response cannot be encoded: {exc}") from None


def _str(doc: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    v = doc[name]
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise InvalidCacheEntry(f"{name} must be a string")
    return v


def _seconds(doc: dict[str, Any], name: str, *, optional: bool = False) -> float | None:
    v = doc[name]
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise InvalidCacheEntry(f"{name} must be a non-negative number")
    return float(v)


def decode_response(data: bytes | str) -> Response:
    """Decode and validate an entry written by :func:`encode_response`.

    Raises:
        InvalidCacheEntry: for anything that is not exactly such an entry.
    """
    if len(data) > MAX_ENTRY_BYTES:
        raise InvalidCacheEntry("entry too large")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidCacheEntry("entry is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != ENTRY_FORMAT:
        raise InvalidCacheEntry("entry is not an asyncllm response")
    if doc.get("v") != _VERSION:
        raise InvalidCacheEntry(f"unsupported entry version {doc.get('v')!r}")
    if doc.keys() != _FIELDS:
        raise InvalidCacheEntry("entry has missing or unknown fields")

    text = _str(doc, "text")
    chunks = doc["chunks"]
    if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
        raise InvalidCacheEntry("chunks must be a list of strings")
    if chunks and "".join(chunks) != text:
        raise InvalidCacheEntry("chunks do not add up to the text")
    finish = doc["finish_reason"]
    if finish not in _FINISH:
        raise InvalidCacheEntry("invalid finish reason")
    usage = doc["usage"]
    if usage is not None and (
        not isinstance(usage, list)
        or len(usage) != len(_USAGE)
        or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < _MAX_COUNT for n in usage
        )
    ):
        raise InvalidCacheEntry("usage must be four non-negative integers")
    calls = doc["tool_calls"]
    if not isinstance(calls, list) or not all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(x, str) for x in c) for c in calls
    ):
        raise InvalidCacheEntry("tool_calls must be [id, name, arguments] string triples")
    latency = _seconds(doc, "latency")
    assert latency is not None
    return Response(
        text=text,
        finish_reason=finish,
        usage=None if usage is None else Usage(*usage),
        provider=_str(doc, "provider"),
        model=_str(doc, "model"),
        latency=latency,
        time_to_first_token=_seconds(doc, "time_to_first_token", optional=True),
        tool_calls=tuple(ToolCall(id=c[0], name=c[1], arguments=c[2]) for c in calls),
        raw_finish_reason=_str(doc, "raw_finish_reason", optional=True),
        chunks=tuple(chunks),
    )


class ResponseSerializer(BaseSerializer):  # type: ignore[misc]
    """An aiocache serializer storing :class:`~asyncllm.Response` values as JSON bytes.

    ``loads`` returns ``None`` for a missing key and raises :class:`InvalidCacheEntry` for
    anything that is not a valid entry; it never unpickles or evaluates anything.
    """

    DEFAULT_ENCODING = None  # values travel as bytes

    def dumps(self, value: Response) -> bytes:
        """Encode a response (see :func:`encode_response`)."""
        return encode_response(value)

    def loads(self, value: bytes | str | None) -> Response | None:
        """Decode an entry, or ``None`` for a missing key."""
        if value is None:
            return None
        return decode_response(value)
