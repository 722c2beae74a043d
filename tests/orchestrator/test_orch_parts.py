"""Unit tests of the orchestrator's parts: policies, token buckets, latency window, breaker."""

from __future__ import annotations

import random

import pytest

from asyncllm import CircuitOpen, ConfigurationError
from asyncllm.orchestrator import (
    BreakerPolicy,
    CircuitBreaker,
    Fallback,
    Hedge,
    LatencyWindow,
    Race,
    RetryPolicy,
    TokenBucket,
)
from asyncllm.orchestrator._policy import coerce_strategy


def state(breaker: CircuitBreaker) -> str:
    return breaker.state


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_coerce_strategy_names_and_objects() -> None:
    assert coerce_strategy("fallback") == Fallback()
    assert coerce_strategy("race") == Race()
    assert coerce_strategy("hedge") == Hedge()
    h = Hedge(delay=0.3)
    assert coerce_strategy(h) is h
    with pytest.raises(ConfigurationError):
        coerce_strategy("fastest")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Race(n=0),
        lambda: Hedge(delay=-1.0),
        lambda: Hedge(delay="slow"),  # type: ignore[arg-type]
        lambda: Hedge(quantile=1.0),
        lambda: Hedge(max_attempts=0),
        lambda: RetryPolicy(max_retries=-1),
        lambda: RetryPolicy(multiplier=0.5),
        lambda: BreakerPolicy(failure_rate=0.0),
        lambda: BreakerPolicy(window=0),
    ],
)
def test_bad_policies_raise_configuration_error(make: object) -> None:
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


def test_backoff_is_full_jitter_capped_and_seeded() -> None:
    policy = RetryPolicy(base_delay=0.5, multiplier=2.0, max_delay=3.0)
    rng = random.Random(7)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (10, 3.0)]:
        samples = [policy.backoff(retry, rng) for _ in range(300)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # Full jitter spreads over the whole range, not around the ceiling.
        assert min(samples) < ceiling * 0.1 and max(samples) > ceiling * 0.9
    a = [policy.backoff(2, random.Random(1)) for _ in range(3)]
    b = [policy.backoff(2, random.Random(1)) for _ in range(3)]
    assert a == b


def test_token_bucket_ratio_burst_and_refund() -> None:
    bucket = TokenBucket(ratio=0.1, capacity=2.0, clock=Clock())
    assert bucket.try_spend() and bucket.try_spend()
    assert not bucket.try_spend()  # burst used up
    for _ in range(9):
        bucket.deposit()
    assert not bucket.try_spend()  # 0.9 tokens
    bucket.deposit()
    assert bucket.try_spend()  # ten requests earned one retry
    bucket.refund()
    assert bucket.try_spend()
    for _ in range(1000):
        bucket.deposit()
    assert bucket.level == pytest.approx(2.0)  # capped at capacity
    assert bucket.statistics()["denied"] == 2


def test_token_bucket_per_second_floor() -> None:
    clock = Clock()
    bucket = TokenBucket(ratio=0.0, capacity=5.0, per_second=2.0, clock=clock)
    for _ in range(5):
        assert bucket.try_spend()
    assert not bucket.try_spend()
    clock.now = 0.5
    assert bucket.try_spend()  # 0.5 s * 2/s = 1 token
    assert not bucket.try_spend()


def test_latency_window_quantiles_and_eviction() -> None:
    w = LatencyWindow(size=100)
    assert w.quantile(0.5) is None
    for i in range(1, 101):
        w.add(i / 100)
    assert w.quantile(0.5) == pytest.approx(0.50)
    assert w.quantile(0.95) == pytest.approx(0.95)
    assert w.quantile(0.99) == pytest.approx(0.99)
    for _ in range(100):
        w.add(5.0)  # the old samples roll out
    assert len(w) == 100
    assert w.quantile(0.01) == 5.0
    assert w.statistics()["samples"] == 100


def test_breaker_opens_on_failure_rate_with_minimum_volume() -> None:
    clock = Clock()
    b = CircuitBreaker("p", BreakerPolicy(failure_rate=0.5, min_volume=4, cooldown=10), clock)
    for _ in range(3):
        assert b.acquire() is False
        b.failure(False)
    assert state(b) == "closed"  # three failures: under the minimum volume
    b.acquire()
    b.failure(False)
    assert state(b) == "open"
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_in == pytest.approx(10.0)
    assert info.value.retryable


def test_breaker_half_open_probe_closes_or_reopens() -> None:
    clock = Clock()
    policy = BreakerPolicy(min_volume=1, cooldown=5, half_open_probes=1)
    b = CircuitBreaker("p", policy, clock)
    b.failure(b.acquire())
    assert state(b) == "open"
    clock.now = 5.0
    assert b.allows()
    probe = b.acquire()
    assert probe is True and state(b) == "half_open"
    with pytest.raises(CircuitOpen):
        b.acquire()  # only one probe at a time
    b.failure(probe)
    assert state(b) == "open"  # failed probe: open again, cool-down restarts
    clock.now = 9.0
    assert not b.allows()
    clock.now = 10.0
    probe = b.acquire()
    b.abandon(probe)  # a cancelled probe frees its slot without a verdict
    probe = b.acquire()
    b.success(probe)
    assert state(b) == "closed"
    assert b.statistics()["window_attempts"] == 0


def test_breaker_window_slides() -> None:
    clock = Clock()
    b = CircuitBreaker("p", BreakerPolicy(min_volume=4, window=10, buckets=10), clock)
    for _ in range(3):
        b.failure(b.acquire())
    clock.now = 20.0  # those failures left the window
    b.failure(b.acquire())
    assert state(b) == "closed"
    assert b.statistics()["window_failures"] == 1


def test_latency_window_accounts_for_censored_samples() -> None:
    # 90 fast answers; 10 slow ones that were cut short (hedged) after 0.2 s.
    w = LatencyWindow(size=100)
    for _ in range(90):
        w.add(0.02)
    for _ in range(10):
        w.add(0.2, censored=True)
    # The censored ten are at least 0.2 s: the p95 is undefined below them, so the
    # estimate is the lower bound 0.2 s, not the 0.02 s that ignoring them would give.
    assert w.quantile(0.95) == pytest.approx(0.2)
    assert w.quantile(0.5) == pytest.approx(0.02)
    # With some of the slow ones observed to the end, Kaplan-Meier places the quantile.
    w2 = LatencyWindow(size=100)
    for _ in range(90):
        w2.add(0.02)
    for _ in range(5):
        w2.add(0.2, censored=True)
    for _ in range(5):
        w2.add(1.0)
    assert w2.quantile(0.95) == pytest.approx(1.0)
    assert w2.quantile(0.90) == pytest.approx(0.02)
    assert w2.statistics()["censored"] == 5
