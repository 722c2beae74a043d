"""redact_secrets: API keys and bearer tokens never reach rendered logs."""

from __future__ import annotations

import json

import structlog

from asyncllm.telemetry import redact_secrets

KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"
ANT = "sk-ant-api03-ABCDEFGHIJKLMNOP"


def test_secret_named_keys_are_masked_at_any_depth() -> None:
    event = {
        "event": "request",
        "api_key": KEY,
        "openai_api_key": "whatever-it-looks-like",
        "X-Api-Key": ANT,
        "password": "hunter2",
        "headers": {"Authorization": f"Bearer {KEY}", "content-type": "application/json"},
        "providers": [{"name": "openai", "apiKey": KEY}],
        "input_tokens": 12,
        "max_tokens": 100,
        "unset_api_key": None,
    }
    out = redact_secrets(None, "info", dict(event))
    assert out["api_key"] == out["openai_api_key"] == out["X-Api-Key"] == "[REDACTED]"
    assert out["password"] == "[REDACTED]"
    assert out["headers"] == {"Authorization": "[REDACTED]", "content-type": "application/json"}
    assert out["providers"] == [{"name": "openai", "apiKey": "[REDACTED]"}]
    assert out["input_tokens"] == 12 and out["max_tokens"] == 100
    assert out["unset_api_key"] is None  # nothing to hide: keep "not set" visible


def test_key_shaped_strings_are_scrubbed_anywhere() -> None:
    out = redact_secrets(
        None,
        "error",
        {
            "event": f"call failed with key {KEY}",
            "detail": ("retry", f"Authorization: Bearer {KEY}"),
            "error": ValueError(f"bad key {ANT}"),
            "exc_info": True,
        },
    )
    rendered = json.dumps(out, default=str)
    assert KEY not in rendered and ANT not in rendered
    assert out["event"] == "call failed with key [REDACTED]"
    assert isinstance(out["detail"], tuple)
    assert out["error"] == "ValueError: bad key [REDACTED]"
    assert out["exc_info"] is True  # left for format_exc_info


def test_works_in_a_structlog_chain_with_rendered_tracebacks() -> None:
    lines: list[str] = []
    logger = structlog.wrap_logger(
        structlog.PrintLogger(),
        processors=[
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(),
            lambda _l, _m, s: lines.append(s) or s,
        ],
    )
    try:
        raise RuntimeError(f"upstream rejected {KEY}")
    except RuntimeError:
        logger.exception("boom", api_key=KEY)
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["api_key"] == "[REDACTED]"
    assert "RuntimeError: upstream rejected [REDACTED]" in doc["exception"]
    assert KEY not in lines[0]
