"""How the orchestrator reads an error: fall over? trip the breaker? was it billed?

These three questions decide every branch of the strategies, so they live in one place.
"""

from __future__ import annotations

from .._exceptions import (
    AnswerRejected,
    AuthenticationFailed,
    BadRequest,
    CircuitOpen,
    ConnectionFailed,
    Overloaded,
    ProviderError,
    RateLimited,
    ServerError,
)

__all__ = ["fails_over", "not_billed", "retry_after_of", "trips_breaker"]

# Errors raised from the response status, before any generation: nothing was billed and
# nothing of the limiter's token reservation was used.
_STATUS_ERRORS = (
    RateLimited,
    Overloaded,
    ServerError,
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    CircuitOpen,
)


def fails_over(exc: BaseException) -> bool:
    """True when another attempt (elsewhere, or later) could succeed.

    Rate limited, overloaded, server errors, timeouts, connection failures, malformed or
    broken streams and open circuits fail over. Bad requests, authentication failures,
    budget refusals, deadline expiry and anything that is not an asyncllm error (a bug)
    fail the logical request at once.
    """
    return isinstance(exc, (ProviderError, CircuitOpen)) and exc.retryable


def trips_breaker(exc: BaseException) -> bool:
    """True when the error says the provider is unwell (counts against its breaker).

    A rejected answer is not an error of the provider: the breaker counts it apart
    (``CircuitBreaker.rejection``).
    """
    return (
        isinstance(exc, ProviderError)
        and exc.retryable
        and not isinstance(exc, (RateLimited, AnswerRejected))
    )


def not_billed(exc: BaseException) -> bool:
    """True when the attempt surely generated nothing (an error status at open, or a
    connection that failed before any response)."""
    return isinstance(exc, _STATUS_ERRORS) and not getattr(exc, "response_started", False)


def retry_after_of(exc: BaseException) -> float | None:
    """The server's Retry-After carried by ``exc``, in seconds."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    return None
