"""Latency distributions for the fake provider and the simulator (seeded, deterministic)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

__all__ = ["Constant", "Latency", "LatencyLike", "Mixture", "heavy_tail", "to_latency"]


class Latency(Protocol):
    """A latency distribution: ``sample(rng)`` returns seconds."""

    def sample(self, rng: random.Random) -> float: ...


@dataclass(slots=True, frozen=True)
class Constant:
    """Always ``seconds``."""

    seconds: float

    def sample(self, rng: random.Random) -> float:
        return self.seconds


@dataclass(slots=True, frozen=True)
class Mixture:
    """A mixture of (weight, seconds) components, each with optional relative jitter.

    ``Mixture(((0.89, 0.05), (0.10, 0.5), (0.01, 2.5)))`` is 89% at 50 ms, 10% at 500 ms and
    1% at 2.5 s. ``jitter=0.1`` spreads each component uniformly by ±10%.
    """

    components: tuple[tuple[float, float], ...]
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("Mixture needs at least one component")
        if any(w < 0 or s < 0 for w, s in self.components):
            raise ValueError("Mixture weights and seconds must be >= 0")
        if sum(w for w, _ in self.components) <= 0:
            raise ValueError("Mixture weights must sum to more than 0")

    def sample(self, rng: random.Random) -> float:
        total = sum(w for w, _ in self.components)
        x = rng.random() * total
        s = self.components[-1][1]
        for weight, seconds in self.components:
            x -= weight
            if x < 0:
                s = seconds
                break
        if self.jitter:
            s *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, s)


def heavy_tail(
    base: float,
    *,
    slow: Sequence[tuple[float, float]] = ((0.10, 10.0), (0.01, 50.0)),
    jitter: float = 0.1,
) -> Mixture:
    """``base`` seconds most of the time; ``slow`` lists (probability, multiplier).

    The default is the classic tail: 89% fast, 10% ten times slower, 1% fifty times slower.
    """
    p_slow = sum(p for p, _ in slow)
    if not 0 <= p_slow < 1:
        raise ValueError("slow probabilities must sum to less than 1")
    comps = ((1.0 - p_slow, base), *((p, base * m) for p, m in slow))
    return Mixture(tuple(comps), jitter=jitter)


LatencyLike: TypeAlias = "float | Latency"


def to_latency(value: LatencyLike) -> Latency:
    """A number is a constant latency; anything with ``sample`` is used as is."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("latency must be >= 0")
        return Constant(float(value))
    if hasattr(value, "sample"):
        return value
    raise TypeError(f"latency must be a number or have .sample(rng), got {type(value).__name__}")
