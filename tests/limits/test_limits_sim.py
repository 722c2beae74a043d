"""The in-process limiter against the simulator's own limits: no 429s, >= 95% of the rate.

Time is scaled down (``period=1.0``) so thousands of requests run in seconds. Requests go
through ``Client.map`` (orchestrator + ``openai_compatible`` driver, 256 at a time) with the
same limits configured in the limiter and the simulator; the rate is measured from
completion times over the second half of the run.

"Not past the limit" is the simulator's verdict: zero 429s. (The exact per-window bound is
asserted with fake time in ``test_limits_inprocess.py``; completion times on a loaded CPU
are too noisy for an upper bound.)

The simulator starts with full buckets and the limiter bursts to the default ``burst=0.5``
of them; the other half is slack for the spread between admission and arrival. The first
requests reach the server some time after the limiter's clock started, and the server's
full bucket cannot bank that time. Scaled down 60x, that start-up delay weighs 60x more
than in real use: ``map(concurrency=2400)`` spends ~1.2 s creating its tasks before the
first response here, more than the 0.5 s of slack (in real time: 1.2 s of a 60 s period).
"""

from __future__ import annotations

import pytest
from limits_load import client_map, hammer, sim_tokens

from asyncllm.limits import RateLimiter
from asyncllm.testing import Fault, Simulator

pytestmark = pytest.mark.slow

RPM, TPM, PERIOD = 600, 60_000, 1.0


async def test_request_bound_run_reaches_the_rate_without_429() -> None:
    # ~20 tokens a request: 600 req/s binds long before 60k tokens/s.
    async with Simulator(rpm=RPM, tpm=TPM, period=PERIOD, output_tokens=8) as sim:
        lim = RateLimiter(rpm=RPM, tpm=TPM, period=PERIOD)
        res = await client_map(lim, sim.openai_base_url, 2000, prompt_chars=40, max_tokens=16)
    assert res.statuses == {200: 2000}, res.errors[:5]
    assert sim.stats.rate_limited == 0
    req_rate, _ = res.steady_rates()
    print(f"request-bound: {req_rate:.1f} req/s of {RPM / PERIOD:.0f} allowed")
    assert req_rate >= 0.95 * RPM / PERIOD


async def test_token_bound_run_with_refunds_reaches_the_rate_without_429() -> None:
    # Reservation ~ input estimate + max_tokens 64 = 185; the simulator charges 119
    # (103 input + 16 output). Without refunds the run would reach ~64% of the token rate.
    charged = sim_tokens(400, 16)
    async with Simulator(rpm=RPM, tpm=TPM, period=PERIOD, output_tokens=16) as sim:
        lim = RateLimiter(rpm=RPM, tpm=TPM, period=PERIOD)
        res = await client_map(lim, sim.openai_base_url, 2000, prompt_chars=400, max_tokens=64)
    assert res.statuses == {200: 2000}, res.errors[:5]
    assert sim.stats.rate_limited == 0
    assert set(res.tokens) == {charged}
    _, tok_rate = res.steady_rates()
    print(f"token-bound: {tok_rate:.0f} tokens/s of {TPM / PERIOD:.0f} allowed")
    assert tok_rate >= 0.95 * TPM / PERIOD
    stats = lim.statistics()
    assert stats["tokens_refunded"] == 2000 * (stats["tokens_reserved"] // 2000 - charged)
    assert stats["rate_limited"] == 0 and stats["in_flight"] == 0


async def test_injected_429_pauses_everyone_once() -> None:
    async with Simulator(output_tokens=4) as sim:
        sim.inject(Fault.rate_limit(retry_after=0.3), times=1)
        lim = RateLimiter(rpm=1000, period=1.0, max_concurrency=1)
        res = await hammer(lim, sim.openai_url, 20, prompt_chars=10, max_tokens=8)
    assert res.statuses == {429: 1, 200: 19}
    stats = lim.statistics()
    assert stats["rate_limited"] == 1
    # Everyone after the 429 started at least 0.3 s after it.
    first_ok = min(res.stamps)
    assert stats["wait_time_max"] >= 0.3
    assert all(t >= first_ok for t in res.stamps)
