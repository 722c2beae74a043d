"""Four processes share one limit through Redis against a server counting a strict window.

The server (``window_server.py``) refuses any request that would make ``limit + 1`` in the
last ``period`` seconds. The shared limiter must cause no 429 from the very first request
(its start burst respects the window), reach at least 90% of the allowed rate, split it
fairly between the processes and make about one Redis call per admission.
"""

from __future__ import annotations

import pytest
from limits_window import run_shared, summarize

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_four_processes_within_a_strict_window(redis_url: str) -> None:
    run = await run_shared(redis_url, processes=4, rpm=60, period=1.0, seconds=5.0)
    # Shares over the 4 s after the first second: the start burst goes to whoever asked
    # first, which weighs a lot in a run this short (the goal is per 10 s window).
    s = summarize(run, fairness_window=4.0, fairness_from=1.0)
    print(s)
    assert s["server_429s"] == 0, s["refused_at_s"]
    assert s["busiest_window"] <= 60
    assert s["fraction_of_limit"] >= 0.90
    assert s["jain_min"] >= 0.98
    assert s["redis_calls_per_admission"] <= 1.2
