"""Output records, in the OpenAI Batch API output shape, plus asyncllm's own fields.

::

    {"id": "batch_req_…", "custom_id": "a",
     "response": {"status_code": 200, "request_id": "…", "body": {…chat.completion…}},
     "error": null,
     "asyncllm": {"line": 1, "provider": "openai", "model": "gpt-4o-mini",
                  "latency_s": 0.41, "cost_usd": 1.2e-05, "cached": false,
                  "hedged": false, "attempts": 1}}

``response.body`` is a ``chat.completion`` object for ``/v1/chat/completions`` lines and
simple lines, an Anthropic ``message`` object for ``/v1/messages`` and Anthropic lines. A
failed request has ``error: {"code", "message"}`` (and ``response`` with the provider's
HTTP status when there was one); a line that could not be read has ``response: null`` and
``error.code`` naming the problem, its message starting with ``line N:``.

An error record says in ``asyncllm.transient`` whether the failure may pass by itself (the
provider unreachable, timing out, rate limiting, overloaded or failing with a 5xx, its
breaker open, the deadline passed): a rerun of the batch sends those requests again, while
a permanent failure (a bad request, refused credentials, a rejected answer, an unreadable
line) stays answered by its record unless ``--retry-errors``.

Records are pure functions of their inputs: the same answer always makes the same record.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from .._exceptions import (
    AllProvidersFailed,
    AnswerRejected,
    BudgetExceeded,
    BudgetUnavailable,
    CircuitOpen,
    ConnectionFailed,
    DeadlineExceeded,
    LimiterUnavailable,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamBroken,
    redact,
)
from .._types import Response
from ._input import BatchItem, LineError

__all__ = [
    "RECORD_KEY",
    "error_record",
    "is_transient",
    "line_error_record",
    "record_cost",
    "record_is_error",
    "record_is_transient",
    "success_record",
]

#: The key of asyncllm's own fields in every record.
RECORD_KEY = "asyncllm"

_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")

#: Failures that may pass by themselves: a later run may get an answer.
_TRANSIENT = (
    ConnectionFailed,
    ProviderTimeout,
    RateLimited,
    Overloaded,
    ServerError,
    StreamBroken,
    MalformedResponse,
    CircuitOpen,
    DeadlineExceeded,
    LimiterUnavailable,
)


def is_transient(error: BaseException) -> bool:
    """Whether sending the request again later may succeed: some provider failed in a way
    that may pass (a rerun tries them all again), and no provider's answer was rejected by
    the acceptance checks (that answer was paid for; sending again would pay again)."""
    return _anywhere(error, _TRANSIENT, causes=False) and not _anywhere(
        error, AnswerRejected, causes=False
    )


def _anywhere(
    error: BaseException,
    kinds: type[BaseException] | tuple[type[BaseException], ...],
    *,
    causes: bool = True,
) -> bool:
    """Whether ``error``, one of the failures it groups, or (with ``causes``) an error it
    was raised from, is one of ``kinds``."""
    if isinstance(error, kinds):
        return True
    if isinstance(error, (AllProvidersFailed, BaseExceptionGroup)):
        return any(_anywhere(e, kinds, causes=causes) for e in error.exceptions)
    cause = error.__cause__
    return causes and cause is not None and cause is not error and _anywhere(cause, kinds)


def _record_id(custom_id: str | None, line: int) -> str:
    seed = custom_id if custom_id is not None else f"#line {line}"
    return "batch_req_" + hashlib.blake2b(seed.encode(), digest_size=12).hexdigest()


def success_record(
    item: BatchItem,
    response: Response,
    *,
    cost_usd: float | None = None,
    attempts: int = 1,
    hedged: bool = False,
) -> dict[str, Any]:
    """The record of an answered request.

    Args:
        item: The request's batch item.
        response: Its response.
        cost_usd: What answering cost across all attempts (default: ``response.cost_usd``).
        attempts: Attempts sent (retries, hedges and fallbacks included).
        hedged: Whether a hedge attempt was sent.
    """
    body = _message_body(response) if item.endpoint == "messages" else _chat_body(response)
    return {
        "id": _record_id(item.custom_id, item.line),
        "custom_id": item.custom_id,
        "response": {"status_code": 200, "request_id": response.request_id, "body": body},
        "error": None,
        RECORD_KEY: {
            "line": item.line,
            "provider": response.provider,
            "model": response.model,
            "latency_s": round(response.latency, 4),
            "cost_usd": response.cost_usd if cost_usd is None else cost_usd,
            # True when the server reported no usage: cost_usd is then the worst case.
            "usage_estimated": response.usage_estimated,
            "cached": response.cached,
            "hedged": hedged,
            "attempts": attempts,
        },
    }


def error_code(error: BaseException) -> str:
    """A snake_case code for an error: ``RateLimited`` -> ``rate_limited``."""
    return _SNAKE.sub("_", type(error).__name__).lower()


def error_record(
    item: BatchItem,
    error: BaseException,
    *,
    cost_usd: float | None = None,
    attempts: int = 0,
    hedged: bool = False,
) -> dict[str, Any]:
    """The record of a request that failed (every attempt failed, or it was refused).

    Args:
        item: The request's batch item.
        error: What failed. For :class:`~asyncllm.AllProvidersFailed` the last provider
            error gives the HTTP status.
        cost_usd: What the failed attempts cost, when known.
        attempts: Attempts sent.
        hedged: Whether a hedge attempt was sent.
    """
    status = _status(error)
    message = redact(str(error))
    code = error_code(error)
    response = (
        None
        if status is None
        else {
            "status_code": status,
            "request_id": None,
            "body": {"error": {"message": message, "type": code}},
        }
    )
    return {
        "id": _record_id(item.custom_id, item.line),
        "custom_id": item.custom_id,
        "response": response,
        "error": {"code": code, "message": message},
        RECORD_KEY: {
            "line": item.line,
            "provider": getattr(error, "provider", None) or None,
            "cost_usd": cost_usd,
            "hedged": hedged,
            "attempts": attempts,
            "transient": is_transient(error),
        },
    }


def line_error_record(error: LineError) -> dict[str, Any]:
    """The record of an input line that could not be read as a request."""
    return {
        "id": _record_id(error.custom_id, error.line),
        "custom_id": error.custom_id,
        "response": None,
        "error": {"code": error.code, "message": error.message},
        RECORD_KEY: {"line": error.line, "cost_usd": 0.0, "attempts": 0},
    }


def record_is_error(record: Mapping[str, Any]) -> bool:
    """Whether a record is an error record."""
    return record.get("error") is not None


def record_is_transient(record: Mapping[str, Any]) -> bool:
    """Whether a record is an error record of a transient failure (see the module)."""
    extra = record.get(RECORD_KEY)
    return (
        record.get("error") is not None
        and isinstance(extra, Mapping)
        and extra.get("transient") is True
    )


def record_cost(record: Mapping[str, Any]) -> float:
    """What a record says its request cost (0 when unknown)."""
    extra = record.get(RECORD_KEY)
    cost = extra.get("cost_usd") if isinstance(extra, Mapping) else None
    return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0


def is_budget_refusal(error: BaseException) -> bool:
    """True when a budget refused the request (anywhere in a group of failures)."""
    return _anywhere(error, BudgetExceeded)


def is_budget_unavailable(error: BaseException) -> bool:
    """True when the shared budget's store could not be reached (anywhere in a group)."""
    return _anywhere(error, BudgetUnavailable)


def _status(error: BaseException) -> int | None:
    if isinstance(error, ProviderError):
        return error.status_code
    if isinstance(error, (AllProvidersFailed, BaseExceptionGroup)):
        for e in reversed(error.exceptions):
            s = _status(e)
            if s is not None:
                return s
    return None


def _chat_body(r: Response) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None}
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in r.tool_calls
        ]
    finish = r.finish_reason if r.finish_reason != "other" else r.raw_finish_reason
    return {
        "id": r.request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": r.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        # None when the server reported no usage (the cost is then its worst case).
        "usage": None
        if r.usage is None
        else {
            "prompt_tokens": r.usage.input_tokens,
            "completion_tokens": r.usage.output_tokens,
            "total_tokens": r.usage.total_tokens,
        },
    }


def _message_body(r: Response) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if r.text:
        content.append({"type": "text", "text": r.text})
    for t in r.tool_calls:
        try:
            args = orjson.loads(t.arguments) if t.arguments else {}
        except orjson.JSONDecodeError:
            args = {"_raw": t.arguments}
        content.append({"type": "tool_use", "id": t.id, "name": t.name, "input": args})
    stop = _ANTHROPIC_STOP.get(r.finish_reason or "", r.raw_finish_reason)
    return {
        "id": r.request_id,
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": None
        if r.usage is None
        else {"input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens},
    }
