"""Output records: the OpenAI batch output shape, asyncllm's fields under one key."""

from __future__ import annotations

import orjson

from asyncllm import BudgetExceeded, RateLimited, Response, ServerError, Usage
from asyncllm.batch import (
    RECORD_KEY,
    BatchItem,
    LineError,
    error_record,
    line_error_record,
    parse_line,
    record_cost,
    record_is_error,
    success_record,
)
from asyncllm.batch._record import is_budget_refusal


def _item(raw: bytes) -> BatchItem:
    item = parse_line(raw, 5)
    assert isinstance(item, BatchItem)
    return item


def _response() -> Response:
    return Response(
        text="hello there",
        finish_reason="stop",
        usage=Usage(10, 2),
        provider="sim",
        model="m1",
        latency=0.123456,
        cost_usd=0.0001,
        request_id="req-1",
    )


def test_success_record_chat_shape() -> None:
    rec = success_record(
        _item(b'{"custom_id": "a", "prompt": "p"}'),
        _response(),
        attempts=2,
        hedged=True,
        cost_usd=0.0003,
    )
    assert rec["custom_id"] == "a" and rec["id"].startswith("batch_req_") and rec["error"] is None
    body = rec["response"]["body"]
    assert rec["response"]["status_code"] == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "hello there"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    extra = rec[RECORD_KEY]
    assert extra["line"] == 5 and extra["provider"] == "sim" and extra["hedged"] is True
    assert extra["attempts"] == 2 and record_cost(rec) == 0.0003
    assert not record_is_error(rec)
    orjson.dumps(rec)


def test_success_record_messages_shape() -> None:
    rec = success_record(
        _item(b'{"custom_id": "a", "params": {"messages": [{"role": "user", "content": "x"}]}}'),
        _response(),
    )
    body = rec["response"]["body"]
    assert body["type"] == "message" and body["stop_reason"] == "end_turn"
    assert body["content"] == [{"type": "text", "text": "hello there"}]
    assert record_cost(rec) == 0.0001


def test_error_record_keeps_status_and_redacts() -> None:
    err = ServerError("boom sk-abcdefghijklmnop", provider="sim", status_code=503)
    rec = error_record(_item(b'{"custom_id": "a", "prompt": "p"}'), err, attempts=3)
    assert record_is_error(rec)
    assert rec["error"]["code"] == "server_error"
    assert "sk-abcdefghijklmnop" not in orjson.dumps(rec).decode()
    assert rec["response"]["status_code"] == 503
    assert rec[RECORD_KEY]["line"] == 5 and rec[RECORD_KEY]["attempts"] == 3
    rl = error_record(_item(b'{"custom_id": "b", "prompt": "p"}'), RateLimited("slow"))
    assert rl["error"]["code"] == "rate_limited"


def test_line_error_record() -> None:
    rec = line_error_record(LineError(7, None, "invalid_json", "line 7: not JSON"))
    assert rec["custom_id"] is None and rec["response"] is None
    assert rec["error"] == {"code": "invalid_json", "message": "line 7: not JSON"}
    assert rec[RECORD_KEY]["line"] == 7 and record_cost(rec) == 0.0


def test_budget_refusal_is_recognised_inside_groups() -> None:
    from asyncllm import AllProvidersFailed

    refused = BudgetExceeded("b", 1.0, 0.0)
    assert is_budget_refusal(refused)
    group = AllProvidersFailed("all failed", [ServerError("x"), refused])
    assert is_budget_refusal(group)
    assert not is_budget_refusal(ServerError("x"))


def test_an_error_record_says_whether_the_failure_may_pass() -> None:
    from asyncllm import (
        AllProvidersFailed,
        AnswerRejected,
        AuthenticationFailed,
        BadRequest,
        ConnectionFailed,
        DeadlineExceeded,
    )
    from asyncllm.batch._record import record_is_transient

    item = _item(b'{"custom_id": "a", "prompt": "p"}')
    transient = [
        ConnectionFailed("refused", provider="sim"),
        ServerError("boom", provider="sim", status_code=503),
        RateLimited("slow"),
        DeadlineExceeded("too late"),
        AllProvidersFailed("all", [BadRequest("no"), ConnectionFailed("down")]),
    ]
    permanent = [
        BadRequest("no", status_code=400),
        AuthenticationFailed("key", status_code=401),
        AnswerRejected("not json", provider="sim"),
        AllProvidersFailed("all", [BadRequest("no"), AuthenticationFailed("key")]),
        # A paid answer was rejected: a rerun would pay for it again.
        AllProvidersFailed("all", [AnswerRejected("not json"), ConnectionFailed("down")]),
    ]
    for err in transient:
        rec = error_record(item, err)
        assert rec[RECORD_KEY]["transient"] is True and record_is_transient(rec), err
    for err in permanent:
        rec = error_record(item, err)
        assert rec[RECORD_KEY]["transient"] is False and not record_is_transient(rec), err
    line = line_error_record(LineError(7, None, "invalid_json", "line 7: not JSON"))
    assert not record_is_transient(line)
