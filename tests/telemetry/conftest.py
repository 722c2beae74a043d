"""Shared fixtures of the telemetry tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _leave_structlog_as_found() -> Iterator[None]:
    """``structlog.testing.capture_logs`` leaves structlog marked as configured; undo that
    so tests elsewhere that depend on "unconfigured" (the library stays silent) still hold."""
    was_configured = structlog.is_configured()
    yield
    if not was_configured and structlog.is_configured():
        structlog.reset_defaults()
