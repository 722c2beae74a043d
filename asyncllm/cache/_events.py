"""The cache's structured events, on ``structlog.get_logger("asyncllm.cache")``.

Like the rest of asyncllm, the cache stays silent until the application configures
structlog: unconfigured structlog prints every event to stdout, which a library must not
impose (the stdlib ``logging`` convention for libraries). Events carry the key's prefix
(:func:`~asyncllm.cache._stats.short`), never prompt text, keys or credentials.
"""

from __future__ import annotations

from typing import Any

from .._logging import get_logger

__all__ = ["debug", "warning"]

_log = get_logger("asyncllm.cache")


def debug(event: str, **fields: Any) -> None:
    """A routine event: hit, miss, join, store, skip."""
    _log.debug(event, **fields)


def warning(event: str, **fields: Any) -> None:
    """Something an operator should see: a corrupt entry, a failing backend."""
    _log.warning(event, **fields)
