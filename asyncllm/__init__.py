"""asyncllm: an asyncio-native SDK between applications and LLM providers."""

from __future__ import annotations

from ._client import Client, ClientStream
from ._exceptions import (
    AllProvidersFailed,
    AsyncLLMError,
    AuthenticationFailed,
    BadRequest,
    BudgetExceeded,
    CircuitOpen,
    ConfigurationError,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    DeadlineExceeded,
    InvalidRequestError,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamBroken,
)
from ._types import (
    ChatRequest,
    Chunk,
    Message,
    RateLimitInfo,
    Response,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "AllProvidersFailed",
    "AsyncLLMError",
    "AuthenticationFailed",
    "BadRequest",
    "BudgetExceeded",
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
    "InvalidRequestError",
    "MalformedResponse",
    "Message",
    "Overloaded",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitInfo",
    "RateLimited",
    "Response",
    "ServerError",
    "StreamBroken",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "__version__",
]
