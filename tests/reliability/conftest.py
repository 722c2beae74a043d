"""Reliability suite: fixtures shared by its tests."""

from __future__ import annotations

from _structlog import leave_structlog_as_found  # noqa: F401 - autouse for this directory
