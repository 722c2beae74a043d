"""Shared fixtures of the telemetry tests."""

from __future__ import annotations
