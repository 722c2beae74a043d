"""Reliability suite: fixtures shared by its tests."""

from __future__ import annotations
