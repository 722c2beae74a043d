"""The run configuration as a Ray stage sees it: read once on the driver, shared by actors.

A configuration (a TOML path or a mapping, as ``asyncllm run`` reads it) is turned into a
plain, picklable dict on the driver and checked there, so a bad config fails before any
actor starts. A ``redis_url`` (given to the stage, or as a top-level ``redis_url`` key of
the mapping) is filled into every table that can share state through Redis: each
provider's ``limits`` (``redis_key`` defaults to ``asyncllm:<provider name>``), ``[cache]``
and ``[budget]``. Then every actor's limits, cache and budget are the same Redis ones.

Without Redis, limits and budgets live in each actor: ``N`` actors would enforce each limit
``N`` times over, silently. :func:`check_shared` refuses that for more than one actor.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["check_shared", "prepare_config"]


def prepare_config(
    config: str | Path | Mapping[str, Any], *, redis_url: str | None = None
) -> dict[str, Any]:
    """A plain copy of ``config`` with ``redis_url`` filled into every shareable table.

    Args:
        config: A TOML file path, or a mapping as read from one. A top-level ``redis_url``
            key of the mapping (or file) is taken as ``redis_url`` and removed.
        redis_url: Share limits, cache and budget through this Redis. Tables that name
            their own ``redis_url`` keep it.

    Raises:
        ConfigurationError: unreadable file or bad TOML (naming the file).
    """
    if isinstance(config, Mapping):
        data = copy.deepcopy(dict(config))
    else:
        try:
            data = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read config {config}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config {config} is not valid TOML: {exc}") from exc
    top = data.pop("redis_url", None)
    url = redis_url or top
    if url is None:
        return data
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError("redis_url must start with redis://, rediss:// or unix://")
    providers = data.get("providers")
    if isinstance(providers, Mapping):
        for name, table in providers.items():
            limits = table.get("limits") if isinstance(table, Mapping) else None
            if isinstance(limits, dict):
                limits.setdefault("redis_url", url)
                limits.setdefault("redis_key", f"asyncllm:{name}")
    for section in ("cache", "budget"):
        table = data.get(section)
        if isinstance(table, dict):
            table.setdefault("redis_url", url)
    return data


def check_shared(data: Mapping[str, Any], actors: int) -> None:
    """Refuse limits or a budget that ``actors`` actors would each enforce on their own.

    Raises:
        ConfigurationError: naming the tables, when ``actors > 1`` and a limit or the
            budget has no ``redis_url``.
    """
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ConfigurationError(f"actors must be an integer >= 1, got {actors!r}")
    if actors == 1:
        return
    local = []
    providers = data.get("providers")
    if isinstance(providers, Mapping):
        for name, table in providers.items():
            limits = table.get("limits") if isinstance(table, Mapping) else None
            if isinstance(limits, Mapping) and not limits.get("redis_url"):
                local.append(f"[providers.{name}.limits]")
    budget = data.get("budget")
    if isinstance(budget, Mapping) and not budget.get("redis_url"):
        local.append("[budget]")
    if local:
        raise ConfigurationError(
            f"{actors} actors would each enforce {', '.join(local)} on their own, "
            f"{actors} times over; share them through Redis (a redis_url in those tables, "
            f"redis_url= / --redis-url for all of them) or run with one actor"
        )
