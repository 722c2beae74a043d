"""asyncllm: an asyncio-native SDK between applications and LLM providers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._build import build_request
from ._client import Client, ClientStream
from ._exceptions import (
    AllProvidersFailed,
    AnswerRejected,
    AsyncLLMError,
    AuthenticationFailed,
    BadRequest,
    BudgetExceeded,
    BudgetUnavailable,
    CacheClosed,
    CircuitOpen,
    ConfigurationError,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    DeadlineExceeded,
    InvalidRequestError,
    LimiterUnavailable,
    MalformedResponse,
    MaxTurnsExceeded,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamBroken,
    StructuredOutputError,
)
from ._lazy import lazy_exports as _lazy_exports
from ._timeout import Timeout
from ._types import (
    ChatRequest,
    Chunk,
    Message,
    RateLimitInfo,
    Response,
    ToolCall,
    ToolCallDelta,
    Usage,
    output_cap,
)
from ._version import __version__
from .cost import (
    BudgetAlert,
    MemoryBudget,
    ModelPrice,
    Prices,
    RedisBudget,
    SpendLimit,
)
from .limits import RateLimit, RateLimiter, RedisRateLimiter
from .orchestrator import BreakerPolicy, Fallback, Hedge, Race, Result, RetryPolicy
from .telemetry import LoggingObserver, MetricsObserver, OTelObserver, redact_secrets

if TYPE_CHECKING:
    from .cache import CachePolicy, ResponseCache
    from .providers import AnthropicProvider, OpenAICompatibleProvider, OpenAIProvider

# The cache pulls in aiocache (and through it redis-py): ~150 ms that only cache users pay.
# The drivers pull in aiohttp (~250 ms): loaded when first named.
__getattr__ = _lazy_exports(
    __name__,
    {
        "AnthropicProvider": ".providers",
        "CachePolicy": ".cache",
        "OpenAICompatibleProvider": ".providers",
        "OpenAIProvider": ".providers",
        "ResponseCache": ".cache",
    },
)

__all__ = [
    "AllProvidersFailed",
    "AnswerRejected",
    "AnthropicProvider",
    "AsyncLLMError",
    "AuthenticationFailed",
    "BadRequest",
    "BreakerPolicy",
    "BudgetAlert",
    "BudgetExceeded",
    "BudgetUnavailable",
    "CacheClosed",
    "CachePolicy",
    "ChatRequest",
    "Chunk",
    "CircuitOpen",
    "Client",
    "ClientStream",
    "ConfigurationError",
    "ConnectionFailed",
    "ContentFiltered",
    "ContextWindowExceeded",
    "DeadlineExceeded",
    "Fallback",
    "Hedge",
    "InvalidRequestError",
    "LimiterUnavailable",
    "LoggingObserver",
    "MalformedResponse",
    "MaxTurnsExceeded",
    "MemoryBudget",
    "Message",
    "MetricsObserver",
    "ModelPrice",
    "OTelObserver",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Overloaded",
    "Prices",
    "ProviderError",
    "ProviderTimeout",
    "Race",
    "RateLimit",
    "RateLimitInfo",
    "RateLimited",
    "RateLimiter",
    "RedisBudget",
    "RedisRateLimiter",
    "Response",
    "ResponseCache",
    "Result",
    "RetryPolicy",
    "ServerError",
    "SpendLimit",
    "StreamBroken",
    "StructuredOutputError",
    "Timeout",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "__version__",
    "build_request",
    "output_cap",
    "redact_secrets",
]
