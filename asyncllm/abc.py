"""The protocols you implement or type against, and the values they are given.

Everything pluggable in asyncllm is a :class:`typing.Protocol`: implement the methods and
pass your object to :class:`asyncllm.Client`; no base class to inherit from.

=====================  =================================================================
Protocol               What it is
=====================  =================================================================
:class:`Provider`      a provider: sends a request to one LLM service (``provider=``,
                       ``providers=[...]``); ``provider.stream(request)`` gives a
                       :class:`ProviderStream`
:class:`Observer`      telemetry: told when each request and attempt starts and ends,
                       with :class:`RequestInfo` and :class:`AttemptInfo` (whose
                       ``quality`` is a :class:`Quality`), and of user feedback
                       (:class:`FeedbackInfo`)
:class:`Cache`         the response cache in front of the strategy (``cache=``)
:class:`Budget`        spend limits: reserves an attempt's worst-case cost, giving a
                       :class:`Reservation` that is settled with the real cost
:class:`Limiter`       per-provider rate limits: an attempt acquires a :class:`Permit`,
                       settled with the real usage
:class:`Pricing`       prices a response's usage in USD (``pricing=``)
=====================  =================================================================

The no-op defaults (:class:`NoBudget`, :class:`NoLimiter`, :class:`NoObserver`,
:class:`NoPricing`) are here too, as the smallest implementations to start from.

Words used throughout: a **provider** is one configured LLM service the client may call
(its ``name`` is unique within the client; its ``kind`` is its wire and price family); a
**budget** is spend in USD only (the share of traffic retries and hedges may add is their
*allowance*, see :class:`asyncllm.RetryPolicy` and :class:`asyncllm.Hedge`).
"""

from __future__ import annotations

from ._hooks import (
    AttemptInfo,
    AttemptRole,
    Budget,
    Cache,
    CacheMode,
    FeedbackInfo,
    FinishCategory,
    Limiter,
    NoBudget,
    NoLimiter,
    NoObserver,
    NoPricing,
    Observer,
    Permit,
    Pricing,
    Quality,
    RequestInfo,
    Reservation,
    Route,
)
from .providers import Provider, ProviderStream

__all__ = [
    "AttemptInfo",
    "AttemptRole",
    "Budget",
    "Cache",
    "CacheMode",
    "FeedbackInfo",
    "FinishCategory",
    "Limiter",
    "NoBudget",
    "NoLimiter",
    "NoObserver",
    "NoPricing",
    "Observer",
    "Permit",
    "Pricing",
    "Provider",
    "ProviderStream",
    "Quality",
    "RequestInfo",
    "Reservation",
    "Route",
]
