"""``parse_line``: the three input shapes, and every way a line can be refused."""

from __future__ import annotations

import orjson
import pytest

from asyncllm.batch import BatchItem, LineError, ModelRule, parse_line

_OA = (
    b'{"custom_id": "c", "url": "/v1/chat/completions", '
    b'"body": {"messages": [{"role": "user", "content": "x"}], '
)


def _line(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_openai_batch_line() -> None:
    item = parse_line(
        _line(
            {
                "custom_id": "r1",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_completion_tokens": 7,
                    "temperature": 0,
                },
            }
        ),
        3,
        rule=ModelRule.matching({"gpt-4o-mini"}),
    )
    assert isinstance(item, BatchItem)
    assert (item.custom_id, item.line, item.format, item.endpoint) == (
        "r1",
        3,
        "openai",
        "chat.completions",
    )
    assert item.model == "gpt-4o-mini"
    assert item.request.model is None, "match: the configured providers' models answer"
    assert item.request.max_tokens == 7 and item.request.temperature == 0
    assert item.request.messages[0].content == "hi"


def test_anthropic_batch_line() -> None:
    item = parse_line(
        _line(
            {
                "custom_id": "a1",
                "params": {
                    "model": "claude",
                    "max_tokens": 20,
                    "system": [{"type": "text", "text": "be brief"}],
                    "stop_sequences": ["END"],
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                },
            }
        ),
        1,
        rule=ModelRule("override"),
    )
    assert isinstance(item, BatchItem)
    assert item.format == "anthropic" and item.endpoint == "messages"
    assert item.request.system == "be brief" and item.request.stop == ("END",)
    assert item.request.model == "claude", "override sends the line's model"


@pytest.mark.parametrize(
    ("obj", "cid"),
    [
        ({"custom_id": "x", "prompt": "p"}, "x"),
        ({"id": "y", "messages": [{"role": "user", "content": "p"}]}, "y"),
        ({"id": 17, "prompt": "p", "max_tokens": 3}, "17"),
        ({"prompt": "p"}, "line-9"),
    ],
)
def test_simple_line_ids(obj: dict[str, object], cid: str) -> None:
    item = parse_line(_line(obj), 9)
    assert isinstance(item, BatchItem) and item.custom_id == cid and item.format == "simple"


def test_blank_line_is_not_a_request() -> None:
    assert parse_line(b"  \n", 4) is None


@pytest.mark.parametrize(
    ("raw", "code", "needle"),
    [
        (b"{nope", "invalid_json", "not JSON"),
        (b"[1, 2]", "invalid_line", "not a JSON object"),
        (b'{"custom_id": 5, "prompt": "p"}', "invalid_custom_id", "custom_id"),
        (
            b'{"custom_id": "c", "prompt": "p", "frequency_penalty": 1}',
            "unknown_parameter",
            "frequency_penalty",
        ),
        (
            b'{"custom_id": "c", "prompt": "p", "provider_options": {"model": "x"}}',
            "unknown_parameter",
            "provider_options",
        ),
        (
            b'{"custom_id": "c", "body": {"messages": []}, "url": "https://evil.example/v1/chat/completions"}',
            "invalid_url",
            "url must be one of",
        ),
        (
            b'{"custom_id": "c", "body": {"messages": []}, "url": "/v1/embeddings"}',
            "invalid_url",
            "/v1/embeddings",
        ),
        (
            b'{"custom_id": "c", "method": "GET", "url": "/v1/chat/completions", "body": {}}',
            "invalid_method",
            "POST",
        ),
        (
            _OA + b'"n": 2}}',
            "invalid_request",
            "n must be 1",
        ),
        (
            _OA + b'"stream": true}}',
            "invalid_request",
            "stream",
        ),
        (
            _OA + b'"logprobs": true}}',
            "unknown_parameter",
            "logprobs",
        ),
        (
            b'{"custom_id": "c", "base_url": "http://evil", "url": "/v1/chat/completions", '
            b'"body": {}}',
            "unknown_parameter",
            "base_url",
        ),
        (
            b'{"custom_id": "c", "params": {"messages": [{"role": "user", "content": "x"}], '
            b'"top_k": 3}}',
            "unknown_parameter",
            "top_k",
        ),
        (
            b'{"custom_id": "c", "messages": [{"role": "robot", "content": "x"}]}',
            "invalid_request",
            "messages",
        ),
        (b'{"custom_id": "c", "nothing": 1}', "unknown_parameter", "nothing"),
        (b'{"custom_id": "c"}', "invalid_request", "prompt"),
        (b'{"body": {}, "url": "/v1/chat/completions"}', "invalid_custom_id", "required"),
    ],
)
def test_bad_lines_are_typed_errors_naming_the_line(raw: bytes, code: str, needle: str) -> None:
    err = parse_line(raw, 42)
    assert isinstance(err, LineError), err
    assert err.code == code and err.line == 42
    assert err.message.startswith("line 42: ") and needle in err.message


def test_model_rule_match_refuses_an_unconfigured_model() -> None:
    rule = ModelRule.matching({"gpt-4o-mini"})
    err = parse_line(b'{"custom_id": "c", "prompt": "p", "model": "gpt-5-pro"}', 2, rule=rule)
    assert isinstance(err, LineError) and err.code == "model_not_configured"
    assert err.custom_id == "c" and "gpt-5-pro" in err.message
    ok = parse_line(b'{"custom_id": "c", "prompt": "p", "model": "gpt-4o-mini"}', 2, rule=rule)
    assert isinstance(ok, BatchItem) and ok.request.model is None


def test_model_rule_ignore_drops_the_model() -> None:
    item = parse_line(b'{"custom_id": "c", "prompt": "p", "model": "anything"}', 1)
    assert isinstance(item, BatchItem)
    assert item.model == "anything" and item.request.model is None


async def test_a_byte_order_mark_on_line_one_is_skipped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Editors on Windows save UTF-8 with a BOM: line 1 is a request like the others.
    from asyncllm.batch._scan import read_lines, scan_input

    line = _line({"custom_id": "a", "prompt": "hi"})
    for raw in (b"\xef\xbb\xbf" + line, "\ufeff" + line.decode()):
        item = parse_line(raw, 1)
        assert isinstance(item, BatchItem) and item.custom_id == "a"
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line + b"\n" + _line({"custom_id": "a", "prompt": "x"}))
    with pytest.raises(Exception, match="duplicate custom_id 'a' on lines 1 and 2"):
        await scan_input(path)  # the BOM'd line's id takes part in the duplicate check
    lines = [row async for row in read_lines(path)]
    assert isinstance(parse_line(lines[0][1], 1), BatchItem)
