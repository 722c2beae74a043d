"""tests/_redis.py: skip without redis-server, except under CI where that is a failure."""

from __future__ import annotations

import shutil

import _redis
import pytest


def test_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        _redis.redis_server_binary()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        _redis.redis_server_binary()


def test_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required when CI is set"):
        _redis.redis_server_binary()


def test_free_port_is_a_loopback_port() -> None:
    assert 0 < _redis.free_port() < 65536
