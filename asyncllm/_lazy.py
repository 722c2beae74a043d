"""One helper for the packages that load heavy modules only when a name is first used.

``import asyncllm`` stays cheap: the drivers pull in aiohttp, the cache aiocache and redis.
A package lists which of its names live where, and gets a module ``__getattr__``::

    __getattr__ = lazy_exports(__name__, {"RedisBackend": "._redis"})

The first ``package.RedisBackend`` imports ``._redis`` (relative to the package), caches the
value in the package's namespace (later lookups are plain attribute reads) and returns it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """Build a module ``__getattr__`` that imports each of ``names`` on first use.

    Args:
        package: The package's (or module's) ``__name__``.
        names: Attribute name -> module holding it, relative (``"._redis"``, ``".cache"``)
            to the package (a module's own package) or absolute.

    Returns:
        The function to assign to the package's ``__getattr__``.
    """
    table = dict(names)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        owner = sys.modules[package]
        # Relative names resolve against the package (a plain module's own package).
        anchor = package if hasattr(owner, "__path__") else package.rpartition(".")[0]
        value = getattr(importlib.import_module(module, anchor), name)
        setattr(owner, name, value)
        return value

    return __getattr__
