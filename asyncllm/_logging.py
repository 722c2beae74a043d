"""The library's loggers: structlog, silent until the application configures structlog.

Unconfigured structlog prints every event to stdout, which a library must not impose on
its users. Every asyncllm module logs through :func:`get_logger`, whose events are dropped
while ``structlog.is_configured()`` is false (one cheap check a call). The library never
calls ``structlog.configure`` itself.

Nor does it import structlog: an application that configured structlog has imported it,
so until ``structlog`` is in ``sys.modules`` there is nothing to log to. Importing it
(which imports ``rich`` and ``pygments`` for its console renderer when they are installed)
costs ~100 ms and a few MB that a process which never logs should not pay.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

__all__ = ["configured_structlog", "get_logger", "loaded_structlog"]


def loaded_structlog() -> ModuleType | None:
    """The ``structlog`` module if the application has imported it, else ``None``."""
    return sys.modules.get("structlog")


def configured_structlog() -> ModuleType | None:
    """The ``structlog`` module if the application has imported and configured it."""
    mod = sys.modules.get("structlog")
    return mod if mod is not None and mod.is_configured() else None


class _Logger:
    __slots__ = ("_log", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._log: Any = None

    def _emit(self, method: str, event: str, kw: dict[str, Any]) -> None:
        mod = configured_structlog()
        if mod is not None:
            if self._log is None:
                self._log = mod.get_logger(self._name)
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
