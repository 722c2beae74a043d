"""The best any hedging policy can do, for a latency distribution and an extra-load allowance.

With legs whose latencies are independent draws from one distribution (survival ``S``), a
hedging client knows nothing about a request but "not answered yet". So any policy is a
*schedule*: send leg ``i`` at time ``s_i`` (``s_0 = 0``) if nothing has answered by then.
For such a schedule, exactly:

* ``P(latency > t) = prod over legs sent before t of S(t - s_i)``;
* extra load ``= sum over backups i of P(nothing answered by s_i)
  = sum_i prod_{j: s_j < s_i} S(s_i - s_j)``.

So the best quantile a policy can reach within an allowance is a small optimisation over
schedules, solved here by search over a grid (1 to 3 backups, 2 ms steps; randomising
between two schedules could shave a little more, which this ignores). ``default_schedule``
is what :class:`~asyncllm.orchestrator.Hedge` () does once its windows are warm: first
backup at the ``1 - 0.8 * budget`` quantile, later ones ``stagger_quantile`` (p90) apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

Survival = Callable[[float], float]

__all__ = ["best", "default_schedule", "extra", "mixture_survival", "quantile", "tail"]


def mixture_survival(components: Sequence[tuple[float, float]], jitter: float) -> Survival:
    """``S(t)`` of :class:`asyncllm.testing.Mixture` (uniform ±``jitter`` per component)."""
    total = sum(w for w, _ in components)

    def survival(t: float) -> float:
        if t <= 0:
            return 1.0
        s = 0.0
        for w, x in components:
            lo, hi = x * (1 - jitter), x * (1 + jitter)
            if t < lo:
                s += w
            elif t < hi:
                s += w * (hi - t) / (hi - lo)
        return s / total

    return survival


def tail(survival: Survival, schedule: Sequence[float], t: float) -> float:
    """``P(latency > t)`` under ``schedule`` (send times, the primary's 0 first)."""
    p = 1.0
    for s in schedule:
        if s < t:
            p *= survival(t - s)
    return p


def quantile(survival: Survival, schedule: Sequence[float], q: float) -> float:
    """The ``q`` quantile of the latency under ``schedule`` (bisection, seconds)."""
    lo, hi = 0.0, 60.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if tail(survival, schedule, mid) <= 1 - q:
            hi = mid
        else:
            lo = mid
    return hi


def extra(survival: Survival, schedule: Sequence[float]) -> float:
    """Expected backups sent per request under ``schedule``."""
    total = 0.0
    for i, s in enumerate(schedule[1:], 1):
        total += tail(survival, [x for x in schedule[:i] if x < s], s)
    return total


def _inverse(survival: Survival, q: float) -> float:
    return quantile(survival, (0.0,), q)


def default_schedule(
    survival: Survival, budget: float = 0.05, backups: int = 2, stagger_q: float = 0.9
) -> tuple[float, ...]:
    """The schedule ``Hedge()`` converges to on this distribution."""
    d = _inverse(survival, min(0.999, max(0.5, 1 - 0.8 * budget)))
    g = _inverse(survival, stagger_q)
    return (0.0, *(d + i * g for i in range(backups)))


def best(
    survival: Survival,
    allowance: float,
    qs: Sequence[float] = (0.99, 0.999),
    horizon: float = 0.4,
    step: float = 0.002,
) -> dict[float, tuple[float, tuple[float, ...], float]]:
    """For each quantile: (best latency, its schedule, its extra load) within ``allowance``."""
    grid = [i * step for i in range(int(horizon / step))]
    out: dict[float, tuple[float, tuple[float, ...], float]] = {}
    for k in (1, 2, 3):
        points = grid if k < 3 else grid[::4]
        for combo in itertools.combinations_with_replacement(points, k):
            schedule = (0.0, *combo)
            e = extra(survival, schedule)
            if e > allowance:
                continue
            for q in qs:
                v = quantile(survival, schedule, q)
                if q not in out or v < out[q][0]:
                    out[q] = (v, schedule, e)
    return out
