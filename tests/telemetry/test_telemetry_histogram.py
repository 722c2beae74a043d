"""LogHistogram: quantiles within the documented ~2.2 % of the exact sample quantiles."""

from __future__ import annotations

import math
import random

import pytest

from asyncllm.telemetry import LogHistogram


def exact(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantiles_within_documented_precision(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-1.5, 1.2) for _ in range(20_000)]
    h = LogHistogram()
    for v in values:
        h.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        got = h.quantile(q)
        assert got is not None
        assert got == pytest.approx(exact(values, q), rel=0.0222)
    s = h.summary()
    assert s["count"] == 20_000 and s["min"] == values[0] and s["max"] == values[-1]
    assert s["mean"] == pytest.approx(sum(values) / len(values))


def test_empty_zero_and_extremes() -> None:
    h = LogHistogram()
    assert h.quantile(0.5) is None
    assert h.summary()["p99"] is None and h.summary()["count"] == 0
    for v in (0.0, 0.0, 1.0, 2.0):
        h.add(v)
    assert h.quantile(0.25) == 0.0 and h.quantile(0.5) == 0.0
    assert h.quantile(1.0) == 2.0  # clamped to the exact maximum
    one = LogHistogram()
    one.add(0.123)
    assert one.quantile(0.5) == 0.123  # a single value is reported exactly


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(5)
    a, b, both = LogHistogram(), LogHistogram(), LogHistogram()
    for i in range(1000):
        v = rng.expovariate(10)
        (a if i % 2 else b).add(v)
        both.add(v)
    a.merge(b)
    assert a.summary() == pytest.approx(both.summary())
