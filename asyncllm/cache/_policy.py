"""What the cache may reuse: a small value object the cache consults on every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._types import ChatRequest, Response

__all__ = ["CachePolicy"]

_DEFAULT_FINISH = frozenset({"stop", "length", "tool_calls"})


@dataclass(slots=True, frozen=True)
class CachePolicy:
    """Which requests are cached and which responses are stored.

    By default only requests that are deterministic enough to reuse are cached: temperature
    0 or a seed set. Any other request goes straight to the provider, with no read, no
    write and no in-flight sharing (two concurrent samples at temperature 1 are meant to
    differ).

    Stored: responses that finished with one of ``store_finish_reasons``. ``"length"`` is
    included on purpose: a ``max_tokens``-truncated answer is a complete answer to that
    request (same prompt, same ``max_tokens``, same output). ``"content_filter"`` and
    ``"other"`` are not, by default: a refusal may be transient. Errors, and streams that
    broke, were cancelled or had no finish reason, are never stored, whatever the policy.

    Attributes:
        cache_nondeterministic: Also cache requests without temperature 0 or a seed.
        fold_whitespace: Treat every run of whitespace in prompt text as one space when
            building keys (off by default: indentation can matter, in code for instance).
        store_finish_reasons: Finish reasons whose responses may be stored.
    """

    cache_nondeterministic: bool = False
    fold_whitespace: bool = False
    store_finish_reasons: frozenset[str] = _DEFAULT_FINISH

    def is_cacheable(self, request: ChatRequest) -> bool:
        """Whether ``request`` may be answered from (and written to) the cache."""
        if self.cache_nondeterministic:
            return True
        return request.temperature == 0 or request.seed is not None

    def is_storable(self, response: Response) -> bool:
        """Whether ``response`` is complete enough to store (never without a finish reason)."""
        finish = response.finish_reason
        return finish is not None and finish in self.store_finish_reasons
