"""Counters of a response cache, and the key prefix that logs may show."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CacheStats", "short"]


def short(key: str) -> str:
    """The first 12 hex digits of a key's digest: enough to correlate log lines, and never
    the prompt (keys are hashes; logs never carry prompt text)."""
    return key[-64:][:12]


@dataclass(slots=True)
class CacheStats:
    """What a :class:`~asyncllm.cache.ResponseCache` counted since it was created.

    Attributes:
        hits: Requests answered from the store.
        misses: Requests that started an upstream call (mode ``"use"``).
        deduplicated: Requests that joined an identical call already in flight.
        refreshes: Upstream calls started by mode ``"refresh"``.
        bypasses: Requests with mode ``"bypass"`` (no read, no write, no sharing).
        uncacheable: Requests the policy let through (not deterministic enough).
        errors: Shared upstream calls or streams that failed (never stored).
        stored: Responses written.
        store_errors: Responses that could not be encoded for the backend.
        corrupt: Entries read back invalid (counted as misses, never used).
        backend_errors: Backend operations that failed or timed out (counted as misses).
        backend_bypassed: Reads and writes skipped because the backend's breaker was open
            after a failure (reads count as misses).
        restarts: Waiters that started over because the caller hosting their shared call
            left early (only when the cache was not entered, see ``ResponseCache``).
    """

    hits: int = 0
    misses: int = 0
    deduplicated: int = 0
    refreshes: int = 0
    bypasses: int = 0
    uncacheable: int = 0
    errors: int = 0
    stored: int = 0
    store_errors: int = 0
    corrupt: int = 0
    backend_errors: int = 0
    backend_bypassed: int = 0
    restarts: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters, plus ``hit_rate``: hits over every cacheable request."""
        out: dict[str, Any] = asdict(self)
        lookups = self.hits + self.misses + self.deduplicated + self.refreshes
        out["hit_rate"] = self.hits / lookups if lookups else 0.0
        return out
