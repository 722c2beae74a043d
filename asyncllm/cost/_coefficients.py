"""Prices as coefficients: what the price index stores and every priced answer uses.

A price here is linear in the four usage counts plus a per-request constant
(:class:`Linear`), or a set of such segments chosen by the prompt size (:class:`Tiered`,
genai-prices' cliff tiers). :func:`measure` turns a genai-prices price into coefficients by
asking genai-prices itself to price probe usages, so both agree by construction.
"""

from __future__ import annotations

import bisect
import copy
from dataclasses import dataclass
from typing import Any

from .._types import Usage

__all__ = ["Entry", "Linear", "Tiered", "from_json", "measure"]


@dataclass(slots=True, frozen=True)
class Linear:
    """Cost as ``base + Σ coefficient × tokens``, coefficients in USD per token."""

    base: float
    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, usage: Usage) -> float:
        cr = usage.cache_read_tokens
        cw = usage.cache_write_tokens
        uncached = usage.input_tokens - cr - cw
        if uncached < 0:
            # Anthropic's raw convention: input_tokens excludes the cache parts.
            uncached = usage.input_tokens
        return (
            self.base
            + uncached * self.input
            + usage.output_tokens * self.output
            + cr * self.cache_read
            + cw * self.cache_write
        )


@dataclass(slots=True, frozen=True)
class Tiered:
    """genai-prices' cliff tiers: all tokens pay the tier whose start the input exceeds."""

    starts: tuple[int, ...]  # ascending; segment i+1 applies when input_tokens > starts[i]
    segments: tuple[Linear, ...]  # len(starts) + 1

    def cost(self, usage: Usage) -> float:
        total_input = usage.input_tokens
        if usage.cache_read_tokens + usage.cache_write_tokens > total_input:
            total_input += usage.cache_read_tokens + usage.cache_write_tokens
        return self.segments[bisect.bisect_left(self.starts, total_input)].cost(usage)


#: A resolved price: coefficients, or ``None`` when the model is not priced.
Entry = Linear | Tiered | None


def _numbers(values: Any, n: int | None = None) -> list[float]:
    """``values`` as floats, or ``ValueError``: an index entry of another shape is damaged."""
    if not isinstance(values, list) or (n is not None and len(values) != n):
        raise ValueError(f"price index entry {values!r} is not a list of {n or 'some'} numbers")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"price index entry {values!r} holds a non-number")
    return [float(v) for v in values]


def from_json(found: Any) -> Entry:
    """An index entry (JSON form) as coefficients; ``ValueError`` when it is not one."""
    if found is None:
        return None
    if isinstance(found, dict):
        starts = [int(s) for s in _numbers(found.get("starts"))]
        segments = found.get("segments")
        if not isinstance(segments, list) or len(segments) != len(starts) + 1:
            raise ValueError(f"price index entry {found!r} has a segment per tier and one more")
        return Tiered(tuple(starts), tuple(Linear(*_numbers(s, 5)) for s in segments))
    return Linear(*_numbers(found, 5))


def measure(model_price: Any) -> Linear | Tiered:
    """Turn a genai-prices ``ModelPrice`` into coefficients by pricing probe usages."""
    from genai_prices.types import TieredPrices

    tiered = {k: v for k, v in vars(model_price).items() if isinstance(v, TieredPrices)}
    if not tiered:
        return _probe(model_price)
    starts = sorted({t.start for v in tiered.values() for t in v.tiers})
    segments = []
    for i in range(len(starts) + 1):
        # A representative input count inside segment i (segment i+1 starts above starts[i]).
        at = 0 if i == 0 else starts[i - 1] + 1
        flat = copy.copy(model_price)
        for k, v in tiered.items():
            price = v.base
            for tier in v.tiers:
                if at > tier.start:
                    price = tier.price
            setattr(flat, k, price)
        segments.append(_probe(flat))
    return Tiered(tuple(starts), tuple(segments))


def _probe(flat_price: Any) -> Linear:
    from genai_prices.types import Usage as GUsage

    m = 1_000_000

    def price(**usage: int) -> float:
        return float(flat_price.calc_price(GUsage(**usage))["total_price"])

    base = price()
    return Linear(
        base=base,
        input=(price(input_tokens=m) - base) / m,
        output=(price(output_tokens=m) - base) / m,
        cache_read=(price(input_tokens=m, cache_read_tokens=m) - base) / m,
        cache_write=(price(input_tokens=m, cache_write_tokens=m) - base) / m,
    )
