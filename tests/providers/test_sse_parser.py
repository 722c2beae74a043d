"""The bytes SSE parser: line endings, multi-line data, comments, named events, splits."""

from __future__ import annotations

import pytest

from asyncllm.providers._sse import SSEParser


def feed_all(*parts: bytes) -> list[tuple[str | None, bytes]]:
    p = SSEParser()
    out: list[tuple[str | None, bytes]] = []
    for part in parts:
        out += p.feed(part)
    return out


def test_single_data_events() -> None:
    assert feed_all(b'data: {"a":1}\n\ndata: [DONE]\n\n') == [(None, b'{"a":1}'), (None, b"[DONE]")]


def test_incomplete_event_waits_for_the_blank_line() -> None:
    p = SSEParser()
    assert p.feed(b"data: x") == []
    assert p.pending
    assert p.feed(b"yz\n") == []
    assert p.feed(b"\n") == [(None, b"xyz")]
    assert not p.pending


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    stream = b"event: ping" + eol + b"data: {}" + eol + eol + b"data: 2" + eol + eol
    assert feed_all(stream) == [("ping", b"{}"), (None, b"2")]


def test_crlf_split_across_feeds() -> None:
    # "\r" ends one read and "\n" starts the next: one line ending, not two.
    assert feed_all(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == [(None, b"a"), (None, b"b")]


def test_every_byte_boundary_gives_the_same_events() -> None:
    stream = (
        b': keep-alive\r\n\r\nevent: message_start\r\ndata: {"x":1}\r\n\r\n'
        b"data: line1\r\ndata: line2\r\n\r\nid: 7\r\nretry: 10\r\ndata:nospace\r\n\r\n"
    )
    expected = [("message_start", b'{"x":1}'), (None, b"line1\nline2"), (None, b"nospace")]
    assert feed_all(stream) == expected
    for cut in range(1, len(stream)):
        assert feed_all(stream[:cut], stream[cut:]) == expected, cut
    assert feed_all(*(stream[i : i + 1] for i in range(len(stream)))) == expected


def test_comments_and_field_only_blocks_dispatch_nothing() -> None:
    assert feed_all(b": ping\n\nevent: lonely\n\nretry: 5\n\n") == []


def test_multi_line_data_and_named_event() -> None:
    got = feed_all(b'event: error\ndata: {"a":\ndata: 1}\n\n')
    assert got == [("error", b'{"a":\n1}')]


def test_only_one_leading_space_is_stripped() -> None:
    assert feed_all(b"data:  two spaces\n\n") == [(None, b" two spaces")]


def test_extra_blank_lines_between_events() -> None:
    assert feed_all(b"data: a\n\n\n\ndata: b\n\n") == [(None, b"a"), (None, b"b")]


def test_data_field_without_colon_is_empty_data() -> None:
    assert feed_all(b"data\n\n") == [(None, b"")]
