"""Keep structlog as the test found it (reusable by any area).

``structlog.testing.capture_logs`` leaves structlog marked as configured; tests elsewhere
check that the library stays silent while the application has not configured structlog,
so whatever configured it during a test must be undone afterwards.

Usage from a conftest (an autouse fixture applies to every test below it)::

    from _structlog import leave_structlog_as_found  # noqa: F401

or around a block: ``with structlog_as_found(), capture_logs() as logs: ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import structlog

__all__ = ["leave_structlog_as_found", "structlog_as_found"]


@contextmanager
def structlog_as_found() -> Iterator[None]:
    """Reset structlog on exit if the block configured it (it was unconfigured before)."""
    was_configured = structlog.is_configured()
    try:
        yield
    finally:
        if not was_configured and structlog.is_configured():
            structlog.reset_defaults()


@pytest.fixture(autouse=True)
def leave_structlog_as_found() -> Iterator[None]:
    """Every test leaves structlog configured only if it found it configured."""
    with structlog_as_found():
        yield
