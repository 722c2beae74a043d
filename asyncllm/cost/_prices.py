"""Prices: the USD cost of a response from its token usage.

Prices come from `genai-prices <https://github.com/pydantic/genai-prices>`_'s *bundled* data
(never fetched at runtime), plus a user override table for private deployments, fine-tunes
and models the data lacks.

Usage convention: ``Usage.input_tokens`` counts *every* prompt token, cache reads and cache
writes included (OpenAI's and genai-prices' convention); ``cache_read_tokens`` and
``cache_write_tokens`` are the parts of it billed at cache rates. A usage whose cache parts
exceed ``input_tokens`` is read as Anthropic's raw convention (input excludes cache tokens)
and the parts are added back, so a driver passing Anthropic's numbers through is still
priced right.

Start-up: genai-prices' data is a 1.6 MB module (~0.2 s and ~20 MB to import), so it is
not imported at all when the compact index (``price_index.jsonl``, see ``_price_index``)
built from the installed genai-prices version can answer: reading it costs ~0.5 ms on the
first lookup. genai-prices itself is imported only for what the index cannot answer (or when
it is stale, or with ``use_updated_prices``).

Hot path: genai-prices' own calculation costs ~100-200 µs (Decimal arithmetic, unit
decomposition). Prices are linear in our four usage counts (with a constant per-request
part), so each (provider, kind, model) is resolved once, its coefficients are measured by
asking genai-prices for a few probe usages, and every later response costs a dict lookup and
five multiplications. Tiered prices (a cliff above N input tokens, for example Anthropic's
long-context rates) get one set of coefficients per tier. Entries are re-resolved after
``ttl`` seconds because genai-prices prices can change on a date.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .._logging import get_logger
from .._types import DEFAULT_OUTPUT_CAP, Usage, output_cap
from ._coefficients import Entry, Linear, Tiered, from_json, measure
from ._price_index import (
    DEFER,
    PriceIndex,
    built_index_path,
    installed_genai_prices,
    load_index,
    private_dir,
)

if TYPE_CHECKING:
    from .._hooks import Pricing
    from .._types import ChatRequest

__all__ = ["DEFAULT_MAX_TOKENS", "LOCAL_KINDS", "ModelPrice", "Prices", "worst_case"]

#: Output tokens assumed for a worst case when the request sets no ``max_tokens``: the one
#: default of :func:`asyncllm.output_cap` (kept under this name for compatibility).
DEFAULT_MAX_TOKENS = DEFAULT_OUTPUT_CAP

#: Provider kinds that run on the user's own hardware: free unless priced by an override.
LOCAL_KINDS = frozenset({"openai_compatible", "ollama", "vllm", "lmstudio"})

_DEFAULT_PROVIDER_IDS: Mapping[str, str] = {"openai": "openai", "anthropic": "anthropic"}

_log = get_logger("asyncllm.cost")


@dataclass(slots=True, frozen=True)
class ModelPrice:
    """A model's price, in USD per million tokens.

    Attributes:
        input_per_mtok: Price of a million uncached prompt tokens.
        output_per_mtok: Price of a million generated tokens.
        cache_read_per_mtok: Price of a million prompt tokens read from the provider's
            prompt cache; ``None`` bills them as ordinary input.
        cache_write_per_mtok: Price of a million prompt tokens written to the prompt cache;
            ``None`` bills them as ordinary input.
        per_request: A flat price per request, in USD.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    per_request: float = 0.0

    def cost(self, usage: Usage) -> float:
        """The USD cost of ``usage`` at this price."""
        return _linear(self).cost(usage)


def _linear(price: ModelPrice) -> Linear:
    """A :class:`ModelPrice` (USD per million tokens) as coefficients (USD per token)."""
    inp = price.input_per_mtok / 1e6
    cr = price.cache_read_per_mtok
    cw = price.cache_write_per_mtok
    return Linear(
        base=price.per_request,
        input=inp,
        output=price.output_per_mtok / 1e6,
        cache_read=inp if cr is None else cr / 1e6,
        cache_write=inp if cw is None else cw / 1e6,
    )


@dataclass(slots=True)
class _Cached:
    entry: Entry
    expires: float


class Prices:
    """Prices responses from genai-prices' bundled data and user overrides.

    Implements the :class:`~asyncllm._hooks.Pricing` protocol. Lookups are cached per
    (provider, kind, model), so pricing a response costs a dict lookup and a few
    multiplications. The first lookup reads the compact price index (~0.5 ms); genai-prices
    itself (~0.2 s to import) is loaded only for a model the index cannot resolve, or when
    the index is stale. :meth:`load` does the reading at a time of your choosing.

    Args:
        overrides: Prices that win over genai-prices, keyed by ``(provider name or kind,
            model)``; the model may be ``"*"`` for every model of that provider or kind,
            for example ``{("vllm", "*"): ModelPrice(0.1, 0.1)}`` to charge for a
            self-hosted GPU. A provider-name key wins over a kind key, an exact model over
            ``"*"``.
        provider_ids: Maps provider kinds to genai-prices provider ids (default:
            ``openai`` and ``anthropic``). Add ``{"openai_compatible": "groq"}`` to price an
            OpenAI-compatible endpoint hosted by a priced vendor.
        ttl: Seconds a resolved price is reused before genai-prices is asked again (its
            prices can change on a date).
        use_updated_prices: Use genai-prices' process-wide snapshot, which is the bundled
            data unless the application itself runs ``genai_prices.UpdatePrices``.
            asyncllm never starts that updater, so by default prices are the bundled data
            and nothing is fetched over the network.
        clock: Monotonic clock for ``ttl`` (tests inject one).

    Local providers (``local=True``, or a kind in :data:`LOCAL_KINDS`) cost ``0.0`` unless an
    override prices them. An unknown model costs ``None`` and logs one warning per model.
    """

    def __init__(
        self,
        overrides: Mapping[tuple[str, str], ModelPrice] | None = None,
        *,
        provider_ids: Mapping[str, str] | None = None,
        ttl: float = 3600.0,
        use_updated_prices: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for key, value in (overrides or {}).items():
            if not isinstance(value, ModelPrice):
                raise ConfigurationError(f"override {key!r} must be a ModelPrice, got {value!r}")
        self._overrides = {k: _linear(v) for k, v in (overrides or {}).items()}
        self._provider_ids = {**_DEFAULT_PROVIDER_IDS, **(provider_ids or {})}
        self._ttl = ttl
        self._use_updated = use_updated_prices
        self._clock = clock
        self._cache: dict[tuple[str, str, str], _Cached] = {}
        self._snapshot: Any = None
        self._warned: set[tuple[str, str]] = set()
        self._resolves = 0
        self._priced = 0
        self._unknown = 0

    def load(self) -> None:
        """Read the price data now (blocking): the compact index (~0.5 ms; once per machine
        after a genai-prices upgrade, building it takes ~0.7 s), or genai-prices' bundled
        data (~0.2 s) when no index applies or ``use_updated_prices`` is set."""
        if self._use_updated or _index() is None:
            self._data_snapshot()

    async def aload(self) -> None:
        """:meth:`load` without blocking the event loop for long: the shipped index is read
        here (~0.5 ms, less than a worker thread costs); building one for another
        genai-prices version, or importing genai-prices, happens in a worker thread."""
        if not _INDEX:
            shipped = load_index()
            if shipped is not None:
                with _INDEX_LOCK:
                    if not _INDEX:
                        _INDEX.append(shipped)
        if self._use_updated or not _INDEX or _INDEX[0] is None:
            import anyio.to_thread

            await anyio.to_thread.run_sync(self.load)

    def cost(
        self, *, provider: str, kind: str, model: str, usage: Usage, local: bool
    ) -> float | None:
        """The USD cost of ``usage`` on ``model``, or ``None`` when the price is unknown."""
        key = (provider, kind, model)
        cached = self._cache.get(key)
        if cached is None or cached.expires <= self._clock():
            cached = self._resolve(key, local)
        entry = cached.entry
        if entry is None:
            self._unknown += 1
            return None
        self._priced += 1
        return entry.cost(usage)

    def worst_case(
        self,
        request: ChatRequest,
        *,
        kind: str,
        model: str,
        local: bool,
        provider: str = "",
        default_max_tokens: int | None = None,
    ) -> float | None:
        """The most ``request`` can cost on ``model``: see :func:`worst_case`."""
        return worst_case(
            self,
            request,
            provider=provider,
            kind=kind,
            model=model,
            local=local,
            default_max_tokens=default_max_tokens,
        )

    def lookup(
        self, *, kind: str, model: str, provider: str = "", local: bool = False
    ) -> ModelPrice | None:
        """The flat price used below the first tier, for inspection (``None``: unknown)."""
        key = (provider, kind, model)
        cached = self._cache.get(key)
        if cached is None or cached.expires <= self._clock():
            cached = self._resolve(key, local)
        entry = cached.entry
        if isinstance(entry, Tiered):
            entry = entry.segments[0]
        if entry is None:
            return None
        return ModelPrice(
            input_per_mtok=entry.input * 1e6,
            output_per_mtok=entry.output * 1e6,
            cache_read_per_mtok=entry.cache_read * 1e6,
            cache_write_per_mtok=entry.cache_write * 1e6,
            per_request=entry.base,
        )

    def statistics(self) -> dict[str, Any]:
        """Resolutions (cache misses), responses priced, responses of unknown price."""
        return {
            "cached_models": len(self._cache),
            "resolves": self._resolves,
            "priced": self._priced,
            "unknown": self._unknown,
            "unknown_models": sorted(f"{k}:{m}" for k, m in self._warned),
        }

    # -- resolution (cold path) ------------------------------------------------------------

    def _resolve(self, key: tuple[str, str, str], local: bool) -> _Cached:
        provider, kind, model = key
        self._resolves += 1
        entry: Entry = self._override(provider, kind, model)
        if entry is None:
            gp_id = self._provider_ids.get(kind)
            if gp_id is not None and not local:
                entry = self._from_genai_prices(gp_id, model)
                if entry is None and (kind, model) not in self._warned:
                    self._warned.add((kind, model))
                    _log.warning("cost.unknown_model", kind=kind, model=model, provider=provider)
            elif local or kind in LOCAL_KINDS:
                entry = Linear(0.0, 0.0, 0.0, 0.0, 0.0)
            elif (kind, model) not in self._warned:
                self._warned.add((kind, model))
                _log.warning("cost.unknown_provider", kind=kind, model=model, provider=provider)
        cached = _Cached(entry, self._clock() + self._ttl)
        self._cache[key] = cached
        return cached

    def _override(self, provider: str, kind: str, model: str) -> Linear | None:
        o = self._overrides
        if not o:
            return None
        for k in ((provider, model), (kind, model), (provider, "*"), (kind, "*")):
            if k in o:
                return o[k]
        return None

    def _data_snapshot(self) -> Any:
        from genai_prices import data_snapshot

        if self._use_updated:
            return data_snapshot.get_snapshot()
        if self._snapshot is None:
            # Our own snapshot of the bundled data: a process-wide custom snapshot installed
            # by genai_prices.UpdatePrices (network) never leaks in unless asked for.
            from genai_prices.data import providers

            self._snapshot = data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)
        return self._snapshot

    def _from_genai_prices(self, provider_id: str, model: str) -> Entry:
        if not self._use_updated:
            index = _index()
            if index is not None:
                try:
                    found = index.find(provider_id, model, datetime.now(tz=UTC).date())
                    entry = None if found is DEFER else from_json(found)
                except Exception as exc:  # never lose a paid answer to a broken file
                    _index_failed(exc)
                else:
                    if found is not DEFER:
                        return entry
        try:
            _, info = self._data_snapshot().find_provider_model(model, None, provider_id, None)
        except LookupError:
            return None
        try:
            return measure(info.get_prices(datetime.now(tz=UTC)))
        except Exception:  # an unusual price model: give up on it, never crash a request
            _log.warning("cost.unpriceable_model", provider_id=provider_id, model=model)
            return None


_INDEX: list[PriceIndex | None] = []
_INDEX_LOCK = threading.Lock()


def _index() -> PriceIndex | None:
    """The process-wide compact index, read once (``None``: genai-prices answers). Threads
    asking together (``load`` in worker threads) wait for one reading, or one build."""
    if not _INDEX:
        with _INDEX_LOCK:
            if not _INDEX:
                try:
                    index = load_index() or _index_for_installed()
                except Exception as exc:  # never fail a client's opening over it
                    _log.warning(
                        "cost.price_index_stale",
                        detail=f"the price index could not be read ({type(exc).__name__}: "
                        f"{exc}); prices come from genai-prices directly",
                    )
                    index = None
                _INDEX.append(index)
    return _INDEX[0]


def _index_failed(exc: Exception) -> None:
    """A lookup in the index failed (its file changed or broke after it was read): stop
    using it, once, loudly; genai-prices answers from now on."""
    with _INDEX_LOCK:
        if _INDEX and _INDEX[0] is not None:
            _log.warning(
                "cost.price_index_unreadable",
                path=str(_INDEX[0].path),
                detail=f"{type(exc).__name__}: {exc}; prices come from genai-prices directly",
            )
            _INDEX[:] = [None]


def _index_for_installed() -> PriceIndex | None:
    """The shipped index is for another genai-prices version: use the one built for the
    installed version in the cache directory, building it first if this is the first
    process since the upgrade (it imports genai-prices, which answering would need anyway)."""
    version, data = installed_genai_prices()
    path = None if version is None else built_index_path(version, data)
    unusable = None if path is None else private_dir(path.parent)
    if path is None:
        reason = "no cache directory (ASYNCLLM_CACHE_DIR is empty or there is no home)"
    elif unusable is not None:
        reason = f"its cache folder {unusable}"
    else:
        index = load_index(path, built=True)
        if index is not None:
            return index
        from ._price_build import write_index

        try:
            write_index(path)
        except Exception as exc:  # read-only disk, or a genai-prices the builder cannot read
            reason = f"building it failed: {type(exc).__name__}: {exc}"
        else:
            index = load_index(path, built=True)
            if index is not None:
                _log.info("cost.price_index_built", path=str(path), genai_prices=version)
                return index
            reason = (
                f"the index built at {path} does not load (its folder must be yours and "
                "not writable by others)"
            )
    _log.warning(
        "cost.price_index_stale",
        genai_prices=version,
        detail=f"the shipped price index is for another genai-prices and {reason}; prices "
        "come from genai-prices directly (about 0.2 s more on the first priced answer)",
    )
    return None


def worst_case(
    pricing: Pricing,
    request: ChatRequest,
    *,
    kind: str,
    model: str,
    local: bool,
    provider: str = "",
    default_max_tokens: int | None = None,
) -> float | None:
    """The most ``request`` can cost: its estimated input plus its output cap, uncached.

    Input is ``request.estimated_input_tokens()`` (a conservative estimate); output is
    :func:`~asyncllm.output_cap` (``request.max_tokens``, else ``default_max_tokens``, else
    :data:`~asyncllm.DEFAULT_OUTPUT_CAP`). Works
    with any :class:`~asyncllm._hooks.Pricing`.

    Returns:
        The cost in USD, or ``None`` when ``pricing`` does not know the model.
    """
    out = output_cap(request, default_max_tokens)
    usage = Usage(input_tokens=request.estimated_input_tokens(), output_tokens=out)
    return pricing.cost(provider=provider, kind=kind, model=model, usage=usage, local=local)
