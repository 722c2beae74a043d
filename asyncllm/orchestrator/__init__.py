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
