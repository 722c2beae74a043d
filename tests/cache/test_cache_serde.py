"""The Response ⇄ JSON codec: round trip, and hostile entries refused without running code."""

from __future__ import annotations

import pickle
from typing import Any

import orjson
import pytest
from _cachetest import TRIGGERED, Exploit

from asyncllm import RateLimitInfo, Response, ToolCall, Usage
from asyncllm.cache import (
    InvalidCacheEntry,
    ResponseSerializer,
    decode_response,
    encode_response,
)

FULL = Response(
    text="Hello, wörld! 👋",
    finish_reason="tool_calls",
    usage=Usage(input_tokens=12, output_tokens=5, cache_read_tokens=3, cache_write_tokens=1),
    provider="openai",
    model="gpt-4o-mini-2024-07-18",
    latency=0.25,
    time_to_first_token=0.05,
    tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),),
    raw_finish_reason="tool_calls",
    rate_limits=RateLimitInfo(limit_requests=100),
    cost_usd=0.001,
    request_id="req-123",
    chunks=("Hello", ", wörld", "! 👋"),
)


def test_round_trip_keeps_every_stored_field() -> None:
    back = decode_response(encode_response(FULL))
    for name in (
        "text",
        "finish_reason",
        "usage",
        "provider",
        "model",
        "latency",
        "time_to_first_token",
        "tool_calls",
        "raw_finish_reason",
        "chunks",
    ):
        assert getattr(back, name) == getattr(FULL, name), name
    # Per-request fields are not stored.
    assert back.rate_limits is None and back.cost_usd is None and back.request_id is None
    assert back.cached is False


def test_round_trip_minimal_response() -> None:
    r = Response(text="", finish_reason="length", usage=Usage(), provider="p", model="m")
    back = decode_response(encode_response(r))
    assert back == r


def test_incomplete_responses_are_never_encoded() -> None:
    r = Response(text="partial", finish_reason=None, usage=Usage(), provider="p", model="m")
    with pytest.raises(ValueError, match="incomplete"):
        encode_response(r)


def test_unencodable_text_is_a_value_error() -> None:
    r = Response(text="\ud800", finish_reason="stop", usage=Usage(), provider="p", model="m")
    with pytest.raises(ValueError):
        encode_response(r)


def _entry(**changes: Any) -> bytes:
    doc = orjson.loads(encode_response(FULL))
    for k, v in changes.items():
        if v is KeyError:
            del doc[k]
        else:
            doc[k] = v
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "something.else", "v": 1}',
        _entry(v=2),
        _entry(extra="field"),
        _entry(text=KeyError),
        _entry(text=123),
        _entry(chunks=["a", "b"]),  # does not add up to the text
        _entry(chunks="abc"),
        _entry(finish_reason=None),
        _entry(finish_reason="exploded"),
        _entry(usage=[1, 2, 3]),
        _entry(usage=[1, 2, 3, -4]),
        _entry(usage=[1, 2, 3, True]),
        _entry(usage=[1, 2, 3, 1.5]),
        _entry(tool_calls=[["id", "name"]]),
        _entry(tool_calls=[[1, 2, 3]]),
        _entry(latency=-1),
        _entry(latency="fast"),
        _entry(time_to_first_token=[1]),
        _entry(provider=None),
        _entry(raw_finish_reason={"$type": "os.system"}),
    ],
)
def test_invalid_entries_are_rejected(data: bytes) -> None:
    with pytest.raises(InvalidCacheEntry):
        decode_response(data)


def test_a_pickle_payload_is_never_executed() -> None:
    payload = pickle.dumps(Exploit())
    with pytest.raises(InvalidCacheEntry):
        decode_response(payload)
    with pytest.raises(InvalidCacheEntry):
        ResponseSerializer().loads(payload)
    assert TRIGGERED == []
    # The payload is live: unpickling it really would have run code.
    pickle.loads(payload)
    assert TRIGGERED == ["code ran"]
    TRIGGERED.clear()


def test_oversized_entries_are_refused_before_parsing() -> None:
    from asyncllm.cache._serde import MAX_ENTRY_BYTES

    with pytest.raises(InvalidCacheEntry, match="too large"):
        decode_response(b" " * (MAX_ENTRY_BYTES + 1))


def test_serializer_passes_missing_keys_through() -> None:
    s = ResponseSerializer()
    assert s.loads(None) is None
    assert s.encoding is None  # bytes on the wire
    assert s.loads(s.dumps(FULL)).text == FULL.text  # type: ignore[union-attr]
