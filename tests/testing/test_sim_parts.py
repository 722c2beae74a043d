"""Simulator internals without sockets: token buckets, header formats, output plans, faults."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from asyncllm.testing import Fault
from asyncllm.testing._sim_faults import FaultQueue
from asyncllm.testing._sim_limits import (
    DEFAULT_RPM,
    RateLimits,
    anthropic_headers,
    openai_duration,
    openai_headers,
    rfc3339,
)
from asyncllm.testing._sim_text import SimRequest, ToolSpec, plan, split_even, text_of


def sreq(prompt: str = "user:hello", **kw: object) -> SimRequest:
    return SimRequest(model="m", prompt=prompt, chars=len(prompt), n_messages=1, **kw)  # type: ignore[arg-type]


# -- rate limits ----------------------------------------------------------------------------


def test_request_bucket_refuses_then_refills_continuously() -> None:
    lim = RateLimits(rpm=5, tpm=None, period=1.0, now=0.0)
    assert [lim.admit(10, 0.0)[0] for _ in range(5)] == [0.0] * 5
    wait, which = lim.admit(10, 0.0)
    assert which == "requests" and wait == pytest.approx(0.2)  # one request refills in 1/5 s
    assert lim.admit(10, 0.1)[0] == pytest.approx(0.1)
    assert lim.admit(10, 0.2) == (0.0, "")
    snap = lim.snapshot(0.2)
    assert (snap.limit_requests, snap.remaining_requests) == (5, 0)
    assert snap.reset_requests == pytest.approx(1.0)


def test_token_bucket_charges_and_refuses_without_taking() -> None:
    lim = RateLimits(rpm=None, tpm=100, period=10.0, now=0.0)
    assert lim.admit(60, 0.0) == (0.0, "")
    wait, which = lim.admit(60, 0.0)
    assert which == "tokens" and wait == pytest.approx(2.0)  # 20 tokens at 10 tokens/s
    assert lim.snapshot(0.0).remaining_tokens == 40  # the refused request took nothing
    assert lim.snapshot(0.0).limit_requests == DEFAULT_RPM
    # Larger than the whole bucket: it never fits, so the answer is a whole period.
    assert lim.admit(500, 100.0)[0] == pytest.approx(10.0)


def test_unenforced_limits_never_refuse_and_floor_at_zero() -> None:
    lim = RateLimits(rpm=None, tpm=None, period=60.0, now=0.0)
    for _ in range(3):
        assert lim.admit(10**9, 0.0) == (0.0, "")
    assert lim.snapshot(0.0).remaining_tokens == 0


def test_limit_validation() -> None:
    for kw in ({"rpm": 0}, {"tpm": -1}):
        with pytest.raises(ValueError):
            RateLimits(**{"rpm": None, "tpm": None, **kw}, period=1.0, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RateLimits(rpm=1, tpm=None, period=0.0, now=0.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.0201, "21ms"),
        (0.999, "999ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (59.8154, "59.815s"),
        (360.0, "6m0s"),
        (3723.9, "1h2m3s"),
    ],
)
def test_openai_duration_strings(seconds: float, text: str) -> None:
    assert openai_duration(seconds) == text


def test_header_sets() -> None:
    lim = RateLimits(rpm=60, tpm=1000, period=60.0, now=0.0)
    lim.admit(100, 0.0)
    snap = lim.snapshot(0.0)
    oh = dict(openai_headers(snap))
    assert oh["x-ratelimit-remaining-requests"] == "59"
    assert oh["x-ratelimit-remaining-tokens"] == "900"
    assert oh["x-ratelimit-reset-requests"] == "1s"
    assert oh["x-ratelimit-reset-tokens"] == "6s"
    ah = dict(anthropic_headers(snap, wall_now=1_700_000_000.0))
    assert ah["anthropic-ratelimit-requests-reset"] == "2023-11-14T22:13:21Z"
    assert ah["anthropic-ratelimit-tokens-reset"] == "2023-11-14T22:13:26Z"
    for kind in ("tokens", "input-tokens", "output-tokens"):
        assert ah[f"anthropic-ratelimit-{kind}-limit"] == "1000"
        assert ah[f"anthropic-ratelimit-{kind}-remaining"] == "900"
    assert datetime.fromisoformat(rfc3339(0.2)).timestamp() == 1.0  # rounded up


# -- plans ----------------------------------------------------------------------------------


def test_plan_is_deterministic_and_seeded() -> None:
    a = plan(sreq(), output_tokens=6, seed=0, call_id="c")
    assert a.pieces == plan(sreq(), output_tokens=6, seed=0, call_id="c").pieces
    assert a.pieces != plan(sreq(), output_tokens=6, seed=1, call_id="c").pieces
    assert a.pieces != plan(sreq(seed=9), output_tokens=6, seed=0, call_id="c").pieces
    assert a.pieces != plan(sreq("user:other"), output_tokens=6, seed=0, call_id="c").pieces
    assert a.finish == "stop" and a.output_tokens == 6
    assert not a.pieces[0].startswith(" ") and all(p.startswith(" ") for p in a.pieces[1:])


def test_plan_max_tokens_and_earliest_stop_sequence() -> None:
    full = plan(sreq(), output_tokens=8, seed=0, call_id="c")
    capped = plan(sreq(max_tokens=3), output_tokens=8, seed=0, call_id="c")
    assert capped.pieces == full.pieces[:3] and capped.finish == "length"
    assert plan(sreq(max_tokens=8), output_tokens=8, seed=0, call_id="c").finish == "stop"
    late, early = full.pieces[5], full.pieces[2]
    stopped = plan(sreq(stop=(late, early, "")), output_tokens=8, seed=0, call_id="c")
    assert stopped.finish == "stop_sequence" and stopped.stop_sequence == early
    assert stopped.text == "".join(full.pieces[:2])
    # A stop sequence inside a word cuts that word.
    cut = plan(sreq(stop=(full.pieces[1][2:],)), output_tokens=8, seed=0, call_id="c")
    assert cut.text == full.pieces[0] + full.pieces[1][:2]
    # A stop sequence beyond max_tokens does not apply.
    beyond = plan(sreq(stop=(late,), max_tokens=3), output_tokens=8, seed=0, call_id="c")
    assert beyond.finish == "length"


def test_plan_tool_call_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "unit": {"enum": ["c", "f"]},
            "days": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
            "ok": {"type": ["null", "boolean"]},
        },
    }
    p = plan(sreq(tool=ToolSpec("f", schema)), output_tokens=5, seed=0, call_id="call_1")
    args = json.loads(p.text)
    assert p.finish == "tool" and p.tool_id == "call_1" and p.output_tokens == 5
    assert args["unit"] == "c" and isinstance(args["days"], int)
    assert isinstance(args["tags"][0], str) and isinstance(args["where"]["lat"], float)
    assert isinstance(args["ok"], bool)
    short = plan(
        sreq(tool=ToolSpec("f", schema), max_tokens=2), output_tokens=5, seed=0, call_id="c"
    )
    assert short.finish == "length" and short.pieces == p.pieces[:2]


def test_plan_json_mode() -> None:
    p = plan(sreq(json_mode=True), output_tokens=4, seed=0, call_id="c")
    assert len(json.loads(p.text)["answer"].split(" ")) == 4 and p.output_tokens == 4
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    q = plan(sreq(json_mode=True, json_schema=schema), output_tokens=4, seed=0, call_id="c")
    assert set(json.loads(q.text)) == {"a"}


def test_input_token_rule() -> None:
    r = SimRequest(model="m", prompt="", chars=9, n_messages=2)
    assert r.input_tokens == 3 + 6  # ceil(9 / 4) + 3 per message


def test_split_even_and_text_of() -> None:
    assert split_even("abcdefg", 3) == ["abc", "de", "fg"]
    assert split_even("ab", 5) == ["a", "b"]
    assert split_even("", 3) == [""]
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "tool_result", "content": [{"type": "text", "text": "b"}]},
        "c",
    ]
    assert text_of(parts) == "abc"
    assert text_of(None) == "" and text_of("s") == "s"


# -- faults ---------------------------------------------------------------------------------


def test_fault_queue_is_fifo_with_counts() -> None:
    q = FaultQueue()
    a, b = Fault.auth(), Fault.overloaded()
    q.push(a, 1)
    q.push(b, 2)
    assert len(q) == 3
    assert [q.pop(), q.pop(), q.pop(), q.pop()] == [a, b, b, None]
    with pytest.raises(ValueError):
        q.push(a, 0)


def test_fault_constructors() -> None:
    assert Fault.rate_limit(2.5).status == 429 and Fault.rate_limit(2.5).seconds == 2.5
    assert Fault.rate_limit().is_error_response
    assert not Fault.rate_limit(after=2).is_error_response  # a mid-stream error event
    assert Fault.server_error(502).status == 502
    assert Fault.unavailable().status == 503 and Fault.overloaded().status == 529
    assert Fault.drop_mid_stream(4).after == 4 and Fault.malformed_chunk().after == 2
    assert Fault.stall(1.0).after is None and Fault.stall(1.0, after=3).after == 3
    assert Fault.context_window().status == 400 and Fault.auth().status == 401
    assert Fault.content_filter().status == 0 and not Fault.content_filter().is_error_response
    with pytest.raises(ValueError):
        Fault.server_error(200)
    with pytest.raises(ValueError):
        Fault.drop_mid_stream(-1)
    with pytest.raises(ValueError):
        Fault.stall(-1.0)
