"""The run configuration (TOML or a dict), checked, and the :class:`~asyncllm.Client` it builds.

::

    [client]
    strategy = "hedge"        # fallback | race | hedge
    timeout = 60              # overall deadline per request, seconds
    concurrency = 64          # requests in flight in a batch

    [batch]                   # optional
    model_policy = "match"    # match | override | ignore: what a line's "model" may do
    ordered = false           # write records in input order
    grace_period = 30         # seconds in-flight requests get to finish after Ctrl-C
    fsync_interval = 1.0      # seconds between fsyncs of the output

    [cache]                   # optional: in-memory, or shared with redis_url
    ttl = 3600
    max_entries = 10000
    # redis_url = "redis://localhost:6379/0"

    [budget]                  # optional: what the whole batch may spend, across runs
    usd = 5.0
    period = "day"            # day | month | seconds of a rolling window
    # redis_url = "redis://localhost:6379/0"   # shared with other processes

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
which come from the environment so that config files can be committed. ``docs/batch.md``
documents every key.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from .._client import Client
from .._exceptions import ConfigurationError
from .._hooks import Budget, Limiter, Observer
from ..providers import Provider, resolve
from ._input import ModelRule

if TYPE_CHECKING:
    from ..cost import Prices

__all__ = [
    "BatchSettings",
    "RunConfig",
    "build_budget",
    "build_client",
    "config_prices",
    "load_config",
    "parse_config",
]

_SECRET_OPTIONS = frozenset({"api_key", "apikey", "key", "token", "authorization"})
_TABLES = frozenset({"client", "batch", "cache", "budget", "providers"})

#: Defaults of the ``[batch]`` table (one place: the CLI and the runner read them here).
DEFAULT_CONCURRENCY = 32
DEFAULT_GRACE_PERIOD = 30.0
DEFAULT_FSYNC_INTERVAL = 1.0


@dataclass(slots=True, frozen=True)
class BatchSettings:
    """The ``[batch]`` table.

    Attributes:
        model_policy: What a line's ``model`` may do (see :class:`ModelRule`).
        ordered: Write records in input order (default: completion order).
        grace_period: Seconds in-flight requests get to finish after a stop request.
        fsync_interval: Seconds between fsyncs of the output file (also at exit).
    """

    model_policy: Literal["match", "override", "ignore"] = "match"
    ordered: bool = False
    grace_period: float = DEFAULT_GRACE_PERIOD
    fsync_interval: float = DEFAULT_FSYNC_INTERVAL


@dataclass(slots=True)
class RunConfig:
    """What a configuration says, parsed and checked."""

    providers: list[Provider]
    limits: dict[str, Limiter] = field(default_factory=dict)
    strategy: Literal["fallback", "race", "hedge"] = "fallback"
    timeout: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    cache: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    prices: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    batch: BatchSettings = field(default_factory=BatchSettings)

    @property
    def budget_usd(self) -> float | None:
        """The ``[budget] usd`` limit, or ``None`` without a budget."""
        return None if self.budget is None else float(self.budget["usd"])

    def model_rule(self) -> ModelRule:
        """The :class:`ModelRule` for input lines: ``[batch] model_policy`` over the
        configured providers' models."""
        models = frozenset(p.default_model for p in self.providers if p.default_model)
        return ModelRule(self.batch.model_policy, models)


def _table(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"[{name}] must be a table")
    return dict(value)


def load_config(source: str | Path | Mapping[str, Any]) -> RunConfig:
    """Read and check a configuration: a TOML file path, or an already-read mapping.

    Raises:
        ConfigurationError: unreadable file, bad TOML, unknown keys, bad values, or API keys
            in the file. The message names the file and the key.
    """
    if isinstance(source, Mapping):
        return parse_config(source)
    try:
        data = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config {source}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config {source} is not valid TOML: {exc}") from exc
    try:
        return parse_config(data)
    except ConfigurationError as exc:
        raise ConfigurationError(f"config {source}: {exc}") from exc


def _positive_number(table: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"[{table}] {key} must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise ConfigurationError(f"[{table}] {key} must be finite")
    return float(value)


def _batch_settings(table: Mapping[str, Any]) -> BatchSettings:
    bad = set(table) - {"model_policy", "ordered", "grace_period", "fsync_interval"}
    if bad:
        raise ConfigurationError(f"unknown keys in [batch]: {sorted(bad)}")
    policy = table.get("model_policy", "match")
    if policy not in ("match", "override", "ignore"):
        raise ConfigurationError("[batch] model_policy must be match, override or ignore")
    ordered = table.get("ordered", False)
    if not isinstance(ordered, bool):
        raise ConfigurationError("[batch] ordered must be true or false")
    return BatchSettings(
        model_policy=policy,
        ordered=ordered,
        grace_period=_positive_number(
            "batch", "grace_period", table.get("grace_period", DEFAULT_GRACE_PERIOD)
        ),
        fsync_interval=_positive_number(
            "batch", "fsync_interval", table.get("fsync_interval", DEFAULT_FSYNC_INTERVAL)
        ),
    )


def _budget_table(table: Mapping[str, Any]) -> dict[str, Any]:
    bad = set(table) - {"usd", "period", "redis_url"}
    if bad or "usd" not in table:
        raise ConfigurationError("[budget] takes usd = N and optionally period and redis_url")
    usd = table["usd"]
    if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not usd >= 0:
        raise ConfigurationError(f"[budget] usd must be a number >= 0, got {usd!r}")
    return dict(table)


def parse_config(data: Mapping[str, Any]) -> RunConfig:
    """Check a configuration mapping (as read from TOML)."""
    from ..limits import limiter

    unknown = set(data) - _TABLES
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
    concurrency = client.get("concurrency", DEFAULT_CONCURRENCY)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError("[client] concurrency must be a positive integer")
    timeout = client.get("timeout")
    if timeout is not None:
        timeout = _positive_number("client", "timeout", timeout)
    strategy = client.get("strategy", "fallback")
    if strategy not in ("fallback", "race", "hedge"):
        raise ConfigurationError("[client] strategy must be fallback, race or hedge")
    return RunConfig(
        providers=providers,
        limits=limits,
        strategy=cast(Literal["fallback", "race", "hedge"], strategy),
        timeout=timeout,
        concurrency=concurrency,
        cache=_table(data, "cache") if "cache" in data else None,
        budget=_budget_table(_table(data, "budget")) if "budget" in data else None,
        prices=prices,
        batch=_batch_settings(_table(data, "batch")),
    )


def config_prices(config: RunConfig) -> Prices:
    """The price table of a config: genai-prices plus the ``price`` overrides."""
    from ..cost import ModelPrice, Prices

    try:
        overrides = {key: ModelPrice(**value) for key, value in config.prices.items()}
    except TypeError as exc:
        raise ConfigurationError(f"bad price table: {exc}") from exc
    return Prices(overrides)


def build_budget(
    config: RunConfig, *, spent_usd: float = 0.0, pricing: Prices | None = None
) -> Budget | None:
    """The config's ``[budget]``, or ``None`` without one.

    An in-process budget is lowered by ``spent_usd`` (what earlier runs of the batch
    spent); a Redis budget (``redis_url``) is not, its store already counts what was spent
    in its period. A Redis budget owns a connection pool: ``await budget.aclose()``.
    """
    from ..cost import MemoryBudget, RedisBudget, SpendLimit

    if config.budget is None:
        return None
    prices = pricing if pricing is not None else config_prices(config)
    opts = dict(config.budget)
    period = opts.get("period", "day")
    try:
        if opts.get("redis_url"):
            limit = SpendLimit(usd=float(opts["usd"]), period=period)
            return RedisBudget(opts["redis_url"], limit, pricing=prices)
        left = max(0.0, float(opts["usd"]) - max(0.0, spent_usd))
        return MemoryBudget(SpendLimit(usd=left, period=period), pricing=prices)
    except ConfigurationError as exc:
        raise ConfigurationError(f"[budget]: {exc}") from exc


def build_client(
    config: RunConfig,
    *,
    observers: list[Observer] | None = None,
    spent_usd: float = 0.0,
    log: bool = True,
    budget: Budget | None = None,
) -> Client:
    """A :class:`Client` with everything the configuration asks for.

    Args:
        config: The checked configuration.
        observers: Extra telemetry observers.
        spent_usd: What earlier runs of this batch already spent (from its output). An
            in-process budget is lowered by it, so a rerun with an unchanged ``[budget] usd``
            does not spend the same money twice. A Redis budget is not lowered: its shared
            store already counts what was spent in its period.
        log: Add the structured-logging observer.
        budget: Use this budget instead of building the config's (see
            :func:`build_budget`; a Redis budget built there is yours to ``aclose``).
    """
    from ..cache import ResponseCache

    prices = config_prices(config)
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
    if budget is None:
        budget = build_budget(config, spent_usd=spent_usd, pricing=prices)
    return Client(
        config.providers,
        strategy=config.strategy,
        timeout=config.timeout,
        limits=config.limits,
        cache=cache,
        budget=budget,
        pricing=prices,
        observers=observers or [],
        log=log,
    )
