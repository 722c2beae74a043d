"""The library's loggers: structlog, silent until the application configures structlog.

Unconfigured structlog prints every event to stdout, which a library must not impose on
its users. Every asyncllm module logs through :func:`get_logger`, whose events are dropped
while ``structlog.is_configured()`` is false (one cheap check a call). The library never
calls ``structlog.configure`` itself.
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["get_logger"]


class _Logger:
    __slots__ = ("_log",)

    def __init__(self, name: str) -> None:
        self._log = structlog.get_logger(name)

    def _emit(self, method: str, event: str, kw: dict[str, Any]) -> None:
        if structlog.is_configured():
            getattr(self._log, method)(event, **kw)

    def debug(self, event: str, **kw: Any) -> None:
        self._emit("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit("error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._emit("exception", event, kw)


def get_logger(name: str) -> _Logger:
    """A structlog logger named ``name`` that stays silent until structlog is configured."""
    return _Logger(name)
