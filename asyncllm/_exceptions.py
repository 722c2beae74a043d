"""asyncllm's exception tree. Nothing above the drivers sees a vendor exception.

::

    AsyncLLMError
    ├── ConfigurationError            bad client set-up: unknown provider, missing API key
    ├── InvalidRequestError           malformed messages or parameters, caught before any call
    ├── ProviderError                 one provider attempt failed (.provider, .model, .retryable)
    │   ├── RateLimited               429 (.retry_after seconds, .rate_limits)
    │   ├── Overloaded                Anthropic 529 / "overloaded"
    │   ├── ServerError               5xx
    │   ├── ProviderTimeout           no (first) byte in time
    │   ├── ConnectionFailed          could not connect / connection reset before a response
    │   ├── MalformedResponse         the provider answered something we could not parse
    │   ├── StreamBroken              the stream died after N chunks (.partial_text)
    │   ├── AnswerRejected            the answer failed `accept=` (.reason, .response)
    │   ├── AuthenticationFailed      401 / 403
    │   └── BadRequest                400 / 404 / 422: the request itself is wrong
    │       ├── ContextWindowExceeded
    │       └── ContentFiltered
    ├── DeadlineExceeded              the logical request's deadline passed
    ├── CircuitOpen                   the provider's breaker is open (retryable elsewhere)
    ├── BudgetExceeded                a budget cannot fit the request's worst-case cost
    │   └── BudgetUnavailable         a shared budget's store (Redis) cannot be reached
    ├── LimiterUnavailable            a shared rate limiter's store (Redis) cannot be reached
    ├── CacheClosed                   the cache shut down while a request waited on it
    ├── InvalidCacheEntry             a stored cache entry is not a valid encoded response
    ├── BatchInputError               a batch input or output file cannot be used (.path, .line)
    ├── AllProvidersFailed            every attempt failed; also an ExceptionGroup of them
    ├── StructuredOutputError         the answer does not validate against response_format
    │                                 (.raw_text, .errors, .response)
    └── MaxTurnsExceeded              an agent loop used its turns without a final answer

``retryable`` says whether the *same request* may succeed when tried again (on this provider
after a pause, or on another one). Bad requests and authentication failures are not retryable.

Messages and reprs never contain API keys: drivers build messages from status codes and the
provider's error text only, and :func:`redact` scrubs anything that looks like a key *and*
every secret a driver registered with :func:`register_secret` (its configured API key,
whatever its shape, and the values of its secret headers), so a plain key a server echoes
in a 401 body is scrubbed too. :func:`scrub_exception` applies that to an error, its
chained causes, sub-exceptions and notes before it reaches the caller.

Short secrets: a registered value of at least :data:`MIN_SUBSTRING_SECRET` characters is
scrubbed wherever it occurs; a shorter one only where it stands alone (not inside a longer
word), so a 3-character test key does not shred every message containing those letters.
Real provider keys are far longer, so they are always scrubbed as substrings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._secrets import redact, register_secret, scrub_exception

if TYPE_CHECKING:
    from ._types import Message, RateLimitInfo, Response

__all__ = [
    "AllProvidersFailed",
    "AnswerRejected",
    "AsyncLLMError",
    "AuthenticationFailed",
    "BadRequest",
    "BatchInputError",
    "BudgetExceeded",
    "BudgetUnavailable",
    "CacheClosed",
    "CircuitOpen",
    "ConfigurationError",
    "ConnectionFailed",
    "ContentFiltered",
    "ContextWindowExceeded",
    "DeadlineExceeded",
    "InvalidCacheEntry",
    "InvalidRequestError",
    "LimiterUnavailable",
    "MalformedResponse",
    "MaxTurnsExceeded",
    "Overloaded",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "ServerError",
    "StreamBroken",
    "StructuredOutputError",
    "redact",
    "register_secret",
    "scrub_exception",
]


class AsyncLLMError(Exception):
    """Root of every error asyncllm raises."""

    retryable: bool = False


class ConfigurationError(AsyncLLMError, ValueError):
    """The client or a provider is set up wrongly (unknown provider, missing API key...)."""


class InvalidRequestError(AsyncLLMError, ValueError):
    """The request is malformed; raised before any network call."""


class ProviderError(AsyncLLMError):
    """One attempt on one provider failed.

    Attributes:
        provider: Provider (driver instance) name.
        model: Model asked for, when known.
        status_code: HTTP status, when there was one.
        retryable: Whether trying again (later, or elsewhere) may succeed.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str | None = None,
        status_code: int | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code

    def __str__(self) -> str:
        where = self.provider + (f"/{self.model}" if self.model else "")
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"[{where}]{status} {self.message}" if where else f"{self.message}{status}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status_code={self.status_code!r})"
        )


class RateLimited(ProviderError):
    """HTTP 429. ``retry_after`` is the server's wait in seconds, when it said one."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        rate_limits: RateLimitInfo | None = None,
        provider: str = "",
        model: str | None = None,
        status_code: int | None = 429,
    ) -> None:
        super().__init__(message, provider=provider, model=model, status_code=status_code)
        self.retry_after = retry_after
        self.rate_limits = rate_limits


class Overloaded(ProviderError):
    """The provider is overloaded (Anthropic 529)."""


class ServerError(ProviderError):
    """The provider failed with a 5xx."""


class ProviderTimeout(ProviderError, TimeoutError):
    """The provider did not answer (or send the first token) in time."""


class ConnectionFailed(ProviderError):
    """The connection could not be made, or was lost.

    Attributes:
        response_started: True when the connection broke after the provider had answered
            (status line received): the provider may have generated, and billed, the
            answer. False when nothing reached the provider's model.
    """

    response_started: bool = False


class MalformedResponse(ProviderError):
    """The provider sent something that is not valid for its wire format."""


class StreamBroken(ProviderError):
    """The stream broke after content had been delivered.

    Attributes:
        partial_text: The text received before the break.
        chunks_received: How many content chunks had arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        chunks_received: int = 0,
        provider: str = "",
        model: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(
            f"{message} (stream broken after {chunks_received} chunks)",
            provider=provider,
            model=model,
            status_code=status_code,
        )
        self.partial_text = partial_text
        self.chunks_received = chunks_received


class AnswerRejected(ProviderError):
    """The provider answered, but the answer failed the acceptance predicate (``accept=``).

    The attempt fails like any retryable provider error: a fallback tries the next
    provider, a race or hedge waits for another leg. The answer was generated and billed,
    so its cost is booked (budget, metrics); it is never cached.

    Attributes:
        reason: Why the predicate rejected it (``"truncated: finish_reason=length"``...).
        response: The rejected answer (text, finish reason, usage, ``cost_usd``).
    """

    def __init__(
        self,
        reason: str,
        *,
        response: Response | None = None,
        provider: str = "",
        model: str | None = None,
    ) -> None:
        super().__init__(f"answer rejected: {reason}", provider=provider, model=model)
        self.reason = reason
        self.response = response


class AuthenticationFailed(ProviderError):
    """The provider rejected the credentials (401/403). Not retryable."""

    retryable = False


class BadRequest(ProviderError):
    """The provider rejected the request itself (400/404/422). Not retryable."""

    retryable = False


class ContextWindowExceeded(BadRequest):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class ContentFiltered(BadRequest):
    """The provider's content filter refused the request or the output."""


class DeadlineExceeded(AsyncLLMError, TimeoutError):
    """The logical request's overall deadline passed before any attempt succeeded."""


class CircuitOpen(AsyncLLMError):
    """The provider's circuit breaker is open; another provider may still answer."""

    retryable = True

    def __init__(self, provider: str, retry_in: float) -> None:
        super().__init__(f"circuit open for provider {provider!r}; next probe in {retry_in:.2f}s")
        self.provider = provider
        self.retry_in = retry_in


class BudgetExceeded(AsyncLLMError):
    """A budget cannot fit the request's worst-case cost. Not retryable.

    Attributes:
        budget: The budget's name.
        requested_usd: The worst-case cost that did not fit.
        remaining_usd: What the budget had left.
    """

    def __init__(self, budget: str, requested_usd: float, remaining_usd: float) -> None:
        super().__init__(
            f"budget {budget!r} cannot fit ${requested_usd:.6f} "
            f"(${remaining_usd:.6f} left in this period)"
        )
        self.budget = budget
        self.requested_usd = requested_usd
        self.remaining_usd = remaining_usd


class BudgetUnavailable(BudgetExceeded):
    """The shared budget's store could not be reached, so nothing could be reserved.

    A ``BudgetExceeded``: a caller that handles refusals handles this one too (the budget
    refuses loudly rather than letting spend through uncounted).
    """

    def __init__(self, budget: str, requested_usd: float, cause: BaseException | str) -> None:
        super().__init__(budget, requested_usd, 0.0)
        why = cause if isinstance(cause, str) else type(cause).__name__
        self.args = (f"budget {budget!r} is unavailable ({why}); refused",)


class LimiterUnavailable(AsyncLLMError):
    """A shared rate limiter could not reach its store (Redis), so no slot was taken.

    The limiter fails closed: no request goes out that its shared budget did not count.
    ``retryable`` is True (the same request may succeed once the store is back), but it is
    not a provider failure, so the orchestrator neither retries it nor falls over to
    another provider: the logical request fails with this error at once, as it does with
    :class:`~asyncllm.cost.BudgetUnavailable`. Retry at the application level if you wish.

    Attributes:
        limiter: The limiter's name (usually the provider name).
        reason: The class name of the underlying error (never its message: it may name
            hosts, and a URL can carry a password).
    """

    retryable = True

    def __init__(self, limiter: str, reason: str) -> None:
        super().__init__(f"rate limiter {limiter!r} is unavailable ({reason}); request refused")
        self.limiter = limiter
        self.reason = reason


class CacheClosed(AsyncLLMError):
    """The cache shut down while this request waited for a shared upstream call."""


class BatchInputError(AsyncLLMError):
    """A batch input (or output) file cannot be used as a whole: unreadable, duplicate
    ``custom_id`` s, changed since an earlier run, or an output that is not ours.

    Attributes:
        path: The file, when there is one.
        line: The 1-based line number, when one line is to blame.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class InvalidCacheEntry(AsyncLLMError, ValueError):
    """A stored cache entry is not a valid encoded response (corrupt, foreign or hostile).

    The cache counts it, logs its key prefix and treats the entry as a miss; raised to
    callers only by :func:`asyncllm.cache.decode_response` itself.
    """


class AllProvidersFailed(AsyncLLMError, ExceptionGroup[Exception]):
    """Every attempt of a logical request failed; ``exceptions`` holds each failure."""

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> AllProvidersFailed:
        return super().__new__(cls, message, exceptions)

    def __init__(self, message: str, exceptions: Sequence[Exception]) -> None:
        super().__init__(message, exceptions)
        #: True when any provider's failure was retryable (a later try may succeed).
        self.retryable = any(getattr(e, "retryable", False) for e in self.exceptions)

    def derive(self, excs: Sequence[Exception]) -> AllProvidersFailed:  # type: ignore[override]
        return AllProvidersFailed(self.message, excs)


class StructuredOutputError(AsyncLLMError, ValueError):
    """The model's answer does not validate against the requested ``response_format``.

    The answer was received (and paid for): it is kept here, never thrown away.

    Attributes:
        raw_text: The answer's text exactly as the model wrote it.
        errors: What failed, one line per validation error (``field: message``).
        response: The :class:`~asyncllm.Response` that carried the answer.
        attempts: How many answers were tried (1 plus the retries used).
    """

    def __init__(
        self,
        message: str,
        *,
        raw_text: str,
        errors: Sequence[str] = (),
        response: Response | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.errors = tuple(errors)
        self.response = response
        self.attempts = attempts


class MaxTurnsExceeded(AsyncLLMError):
    """An agent loop used ``max_turns`` model calls and the model still asked for tools.

    Attributes:
        max_turns: The limit.
        messages: The conversation so far (ending with the tool results of the last turn).
        response: The last response.
    """

    def __init__(
        self, max_turns: int, messages: Sequence[Message], response: Response | None
    ) -> None:
        super().__init__(
            f"the model still asked for tools after {max_turns} turn(s) (max_turns={max_turns})"
        )
        self.max_turns = max_turns
        self.messages = tuple(messages)
        self.response = response
