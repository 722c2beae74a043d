"""What a :class:`~asyncllm.Client` builds from its arguments: the time limits, the
drivers, the observer chain, the prices and the cache. Kept apart from the client, whose
module is about the calls."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ._exceptions import ConfigurationError
from ._hooks import Budget, Cache, NoObserver, Observer, Pricing
from ._timeout import Timeout
from .providers import Provider, resolve
from .quality import RequestLedger
from .telemetry import CompositeObserver, LoggingObserver, MetricsObserver

__all__ = [
    "client_timeout",
    "coerce_cache",
    "default_pricing",
    "observer_chain",
    "resolve_provider",
]


def default_pricing(budget: Budget | None) -> Pricing:
    # Every response knows its cost: genai-prices' bundled table unless told otherwise,
    # shared with the budget so both price alike.
    shared = getattr(budget, "pricing", None)
    if shared is not None:
        return shared  # type: ignore[no-any-return]
    from .cost import Prices

    return Prices()


def client_timeout(
    timeout: float | Timeout | None, attempt: float | None, first_token: float | None
) -> Timeout:
    limits = Timeout.coerce(timeout)
    for name, value, field in (
        ("attempt_timeout", attempt, "attempt"),
        ("first_token_timeout", first_token, "first_token"),
    ):
        if value is None:
            continue
        if getattr(limits, field) is not None:
            raise ConfigurationError(f"{name}= and Timeout.{field} both given; keep one")
        try:
            limits = dataclasses.replace(limits, **{field: value})
        except ConfigurationError:
            raise ConfigurationError(
                f"{name} must be a number of seconds > 0, got {value!r}"
            ) from None
    return limits


def resolve_provider(spec: str | Provider, limits: Timeout) -> Provider:
    # Connection limits reach the drivers the client builds; a driver object has its own.
    options: dict[str, Any] = {}
    if limits.connect is not None:
        options["connect_timeout"] = limits.connect
    if limits.read is not None:
        options["timeout"] = limits.read
    if not options:
        return resolve(spec)
    if not isinstance(spec, str):
        raise ConfigurationError(
            f"Timeout.connect/read apply to providers given as spec strings; provider "
            f"{spec.name!r} is a driver object: pass connect_timeout=/timeout= to it instead"
        )
    try:
        return resolve(spec, **options)
    except TypeError as exc:
        raise ConfigurationError(
            f"provider {spec!r} does not take connect/read timeouts ({exc})"
        ) from None


def observer_chain(
    observers: Sequence[Observer], *, log: bool, metrics: bool
) -> tuple[Observer, MetricsObserver | None, RequestLedger]:
    """The client's observer: logging (``log``), the caller's observers, metrics (kept
    unless ``metrics=False``, or the caller's own ``MetricsObserver``) and the ledger
    ``client.feedback()`` reads; one observer, or a composite that isolates failures."""
    chain: list[Observer] = [LoggingObserver()] if log else []
    chain.extend(observers)
    # Metrics are cheap (a few µs a request): on by default, in client.statistics().
    kept: MetricsObserver | None = next(
        (o for o in observers if isinstance(o, MetricsObserver)), None
    )
    if kept is None and metrics:
        kept = MetricsObserver()
        chain.append(kept)
    # Who answered each recent request, how fast, at what cost: for client.feedback().
    ledger = RequestLedger()
    chain.append(ledger)
    observer: Observer = (
        NoObserver() if not chain else chain[0] if len(chain) == 1 else CompositeObserver(chain)
    )
    return observer, kept, ledger


def coerce_cache(cache: object) -> Cache | None:
    """``Client(cache=...)``: a cache, ``True`` (in-memory, defaults), or ``None``/``False``."""
    if cache is None or cache is False:
        return None
    if cache is True:
        from .cache import ResponseCache

        return ResponseCache()
    if not (
        callable(getattr(cache, "complete", None)) and callable(getattr(cache, "stream", None))
    ):
        raise ConfigurationError(
            f"cache= takes a ResponseCache (or an asyncllm.abc.Cache), True or None; "
            f"got {type(cache).__name__}"
        )
    return cache  # type: ignore[return-value]
