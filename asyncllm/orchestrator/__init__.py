"""The orchestrator: strategies, retries, deadlines, breakers and fan-out.

``asyncllm.Client`` is the way in; this package holds the machinery and the policy values
you configure it with:

- strategies: :class:`Fallback`, :class:`Race`, :class:`Hedge`;
- :class:`RetryPolicy` (attempt cap, backoff with full jitter, retry allowance) and
  :class:`BreakerPolicy` (per-provider circuit breaker);
- :class:`Result`, what ``client.map(...)`` yields, and :class:`FanOut`, its context manager;
- :func:`current_request_id`, the id of the logical request running in this context.

See ``docs/orchestrator.md`` for how they behave.
"""

from __future__ import annotations

from ._breaker import CircuitBreaker
from ._context import current_request_id
from ._fanout import FanOut, Result
from ._latency import LatencyWindow
from ._policy import BreakerPolicy, Fallback, Hedge, Race, RetryPolicy, Strategy
from ._token_bucket import TokenBucket

# Seams for the client layer that composes this room (asyncllm/_client.py, _pipeline.py,
# _client_stream.py, _bracket.py): a sibling enters a room through its package face only
# (the import-linter contract in pyproject.toml). Listed in ``__seams__``, not in
# ``__all__``: not part of the user API, no stability promise.
# isort: off
from ._context import bind_request_id as bind_request_id, unbind_request_id as unbind_request_id
from ._policy import StrategyLike as StrategyLike, coerce_strategy as coerce_strategy
from ._runtime import (
    Call as Call,
    ProviderSlot as ProviderSlot,
    Runtime as Runtime,
    breaker_for as breaker_for,
    loop_time as loop_time,
)
from ._strategy import (
    deadline_error as deadline_error,
    run_strategy as run_strategy,
    strategy_stream as strategy_stream,
)
# isort: on

#: The seams above, by name (not in ``__all__``; ``tests/test_architecture.py`` checks both).
__seams__ = (
    "Call",
    "ProviderSlot",
    "Runtime",
    "StrategyLike",
    "bind_request_id",
    "breaker_for",
    "coerce_strategy",
    "deadline_error",
    "loop_time",
    "run_strategy",
    "strategy_stream",
    "unbind_request_id",
)

__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "Fallback",
    "FanOut",
    "Hedge",
    "LatencyWindow",
    "Race",
    "Result",
    "RetryPolicy",
    "Strategy",
    "TokenBucket",
    "current_request_id",
]
