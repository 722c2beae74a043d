"""The progress line's rate and ETA follow the recent pace, not the run's average."""

from __future__ import annotations

import io

from asyncllm.batch import BatchProgress
from asyncllm.cli._display import LineDisplay, RecentRate


def _at(t: float, records: int, tokens: int = 0, total: int = 3000) -> BatchProgress:
    return BatchProgress(
        total=total, done=records, succeeded=records, output_tokens=tokens, elapsed=t
    )


def test_rate_after_a_burst_is_the_current_pace() -> None:
    # As seen with a 3,000-line batch: ~1,500 records in the first 2 s (the limiter's
    # opening burst), then ~50/s. At 55% the run's average said 535 req/s and ETA 3 s.
    rate = RecentRate(window=15.0)
    t, n = 0.0, 0
    while t < 2.0:
        t, n = t + 0.25, n + 190
        rate.update(_at(t, n, 10 * n), now=t)
    while t < 30.0:
        t, n = t + 0.25, n + 12  # 48 records/s
        now_rate, tps = rate.update(_at(t, n, 10 * n), now=t)
    assert 40 < now_rate < 60
    assert 400 < tps < 600
    assert _at(t, n).rate > 1.8 * now_rate  # the average the old display showed


def test_line_display_eta_uses_the_recent_rate(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = [0.0]
    monkeypatch.setattr("asyncllm.cli._display.time.monotonic", lambda: clock[0])
    out = io.StringIO()
    display = LineDisplay(out, interval=5.0)
    n = 0
    for step in range(1, 121):  # 30 s: a burst to 1,520, then 48/s
        clock[0] = step * 0.25
        n += 190 if step <= 8 else 12
        display.update(_at(clock[0], n))
    last = out.getvalue().strip().splitlines()[-1]
    left = 3000 - n
    eta = int(last.split("ETA ")[1].split("s")[0])
    assert abs(eta - left / 48) < 0.25 * left / 48, last
