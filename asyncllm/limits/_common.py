"""Small rules shared by the in-process and the Redis limiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidRequestError
from .._types import ChatRequest, Usage, output_cap

if TYPE_CHECKING:
    from ._config import RateLimit

__all__ = [
    "Clock",
    "add_totals",
    "check_tokens",
    "default_now",
    "reservation_tokens",
    "statistics_head",
    "usage_tokens",
]

Clock = Callable[[], float]


def default_now() -> float:
    """The running loop's clock (so ``looptime`` drives it in tests), else monotonic time."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def usage_tokens(usage: Usage) -> int:
    """Tokens a response counts against a tokens-per-period limit.

    Input plus output plus cache writes. Providers differ on whether ``input_tokens``
    already contains cache writes (OpenAI reports none; Anthropic counts them separately and
    against its input limit); counting them on top may over-count, which costs a little
    throughput, where under-counting would cost 429s.
    """
    return usage.input_tokens + usage.output_tokens + usage.cache_write_tokens


def reservation_tokens(request: ChatRequest, *, default_output_tokens: int | None = None) -> int:
    """The tokens to reserve for ``request`` before the call.

    The input estimate (deliberately on the high side) plus the most output the request can
    produce: :func:`~asyncllm.output_cap` (``max_tokens``, else ``default_output_tokens``,
    else the library's one default, the same the budget and Anthropic's wire use). The
    surplus goes back when the permit settles with the real usage.
    """
    return request.estimated_input_tokens() + output_cap(request, default_output_tokens)


def check_tokens(tokens: int) -> int:
    """Validate a reservation size.

    Raises:
        InvalidRequestError: when ``tokens`` is not a non-negative integer.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise InvalidRequestError(f"a token reservation must be an integer >= 0, got {tokens!r}")
    return tokens


def statistics_head(name: str, backend: str, config: RateLimit) -> dict[str, Any]:
    """What every limiter's ``statistics()`` starts with: its name, backend and limits."""
    return {
        "name": name,
        "backend": backend,
        "rpm": config.rpm,
        "tpm": config.tpm,
        "max_concurrency": config.max_concurrency,
        "period": config.period,
    }


def add_totals(
    out: dict[str, Any], per: Mapping[str, Mapping[str, Any]], keys: Iterable[str]
) -> None:
    """Sum ``keys`` over the per-model figures ``per`` into ``out``, and the mean wait."""
    for k in keys:
        out[k] = sum(s[k] for s in per.values())
    out["wait_time_avg"] = out["wait_time_total"] / out["acquired"] if out["acquired"] else 0.0
