"""The TOML configuration the CLI reads, turned into a ready :class:`~asyncllm.Client`.

::

    [client]
    strategy = "hedge"        # fallback | race | hedge
    timeout = 60              # overall deadline per request, seconds
    concurrency = 64          # fan-out width of `asyncllm run`

    [cache]                   # optional: in-memory, or shared with redis_url
    ttl = 3600
    max_entries = 10000
    # redis_url = "redis://localhost:6379/0"

    [budget]                  # optional: refuse requests past this spend
    usd = 5.0
    period = "day"            # day | month | seconds of a rolling window

    [providers.openai]
    spec = "openai:gpt-4o-mini"          # kind:model; API key from the environment
    [providers.openai.limits]
    rpm = 500
    tpm = 200000
    max_concurrency = 64

    [providers.local]
    spec = "vllm:meta-llama/Llama-3.1-8B-Instruct"
    base_url = "http://localhost:8000/v1"
    price = { input_per_mtok = 0.05, output_per_mtok = 0.10 }   # optional override

Provider tables may carry any driver option (``base_url``, ``backend``...) except API keys,
which come from the environment so that config files can be committed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from .._client import Client
from .._exceptions import ConfigurationError
from .._hooks import Budget, Limiter, Observer
from ..providers import Provider, resolve

__all__ = ["RunConfig", "build_client", "load_config"]

_SECRET_OPTIONS = frozenset({"api_key", "apikey", "key", "token", "authorization"})


@dataclass(slots=True)
class RunConfig:
    """What a configuration file says, parsed and checked."""

    providers: list[Provider]
    limits: dict[str, Limiter] = field(default_factory=dict)
    strategy: Literal["fallback", "race", "hedge"] = "fallback"
    timeout: float | None = None
    concurrency: int = 32
    cache: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    prices: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)


def _table(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"[{name}] must be a table")
    return dict(value)


def load_config(path: str | Path) -> RunConfig:
    """Read and check a TOML configuration file.

    Raises:
        ConfigurationError: unreadable file, bad TOML, unknown keys, or API keys in the file.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config {path} is not valid TOML: {exc}") from exc
    return parse_config(data)


def parse_config(data: Mapping[str, Any]) -> RunConfig:
    """Check a configuration mapping (as read from TOML)."""
    from ..limits import limiter

    unknown = set(data) - {"client", "cache", "budget", "providers"}
    if unknown:
        raise ConfigurationError(f"unknown config tables {sorted(unknown)}")
    client = _table(data, "client")
    bad = set(client) - {"strategy", "timeout", "concurrency"}
    if bad:
        raise ConfigurationError(f"unknown keys in [client]: {sorted(bad)}")
    providers: list[Provider] = []
    limits: dict[str, Limiter] = {}
    prices: dict[tuple[str, str], dict[str, float]] = {}
    for name, table in _table(data, "providers").items():
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"[providers.{name}] must be a table")
        options = dict(table)
        secret = {k for k in options if k.lower() in _SECRET_OPTIONS}
        if secret:
            raise ConfigurationError(
                f"[providers.{name}] must not hold secrets ({sorted(secret)}); "
                f"set them in the environment"
            )
        spec = options.pop("spec", None)
        if not isinstance(spec, str):
            raise ConfigurationError(f"[providers.{name}] needs spec = 'kind:model'")
        limit_table = options.pop("limits", None)
        price = options.pop("price", None)
        provider = resolve(spec, name=name, **options)
        providers.append(provider)
        if price is not None:
            if not isinstance(price, Mapping) or not provider.default_model:
                raise ConfigurationError(
                    f"[providers.{name}] price must be a table and the spec must name a model"
                )
            prices[(name, provider.default_model)] = dict(price)
        if limit_table is not None:
            if not isinstance(limit_table, Mapping):
                raise ConfigurationError(f"[providers.{name}.limits] must be a table")
            limits[name] = limiter(dict(limit_table), name=name)
    if not providers:
        raise ConfigurationError("the config names no [providers.NAME] table")
    concurrency = client.get("concurrency", 32)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError("[client] concurrency must be a positive integer")
    timeout = client.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigurationError("[client] timeout must be a positive number of seconds")
    strategy = client.get("strategy", "fallback")
    if strategy not in ("fallback", "race", "hedge"):
        raise ConfigurationError("[client] strategy must be fallback, race or hedge")
    return RunConfig(
        providers=providers,
        limits=limits,
        strategy=cast(Literal["fallback", "race", "hedge"], strategy),
        timeout=None if timeout is None else float(timeout),
        concurrency=concurrency,
        cache=_table(data, "cache") if "cache" in data else None,
        budget=_table(data, "budget") if "budget" in data else None,
        prices=prices,
    )


def build_client(config: RunConfig, *, observers: list[Observer] | None = None) -> Client:
    """A :class:`Client` with everything the configuration asks for."""
    from ..cache import ResponseCache
    from ..cost import MemoryBudget, ModelPrice, Prices, SpendLimit

    try:
        overrides = {key: ModelPrice(**value) for key, value in config.prices.items()}
    except TypeError as exc:
        raise ConfigurationError(f"bad price table: {exc}") from exc

    prices = Prices(overrides)
    cache = None
    if config.cache is not None:
        opts = dict(config.cache)
        redis_url = opts.pop("redis_url", None)
        bad = set(opts) - {"ttl", "max_entries", "namespace"}
        if bad:
            raise ConfigurationError(f"unknown keys in [cache]: {sorted(bad)}")
        if redis_url:
            cache = ResponseCache.redis(
                redis_url,
                ttl=opts.get("ttl"),
                namespace=opts.get("namespace"),
            )
        else:
            cache = ResponseCache(**opts)
    budget: Budget | None = None
    if config.budget is not None:
        opts = dict(config.budget)
        bad = set(opts) - {"usd", "period"}
        if bad or "usd" not in opts:
            raise ConfigurationError("[budget] takes usd = N and optionally period")
        budget = MemoryBudget(
            SpendLimit(usd=float(opts["usd"]), period=opts.get("period", "day")),
            pricing=prices,
        )
    return Client(
        config.providers,
        strategy=config.strategy,
        timeout=config.timeout,
        limits=config.limits,
        cache=cache,
        budget=budget,
        pricing=prices,
        observers=observers or [],
    )
