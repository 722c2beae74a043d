"""``Timeout``: every time limit of a request, in one frozen value.

A *timeout* is a duration in seconds; a *deadline* is an absolute time (event-loop clock).
The client turns ``Timeout.total`` into each logical request's deadline when the request
starts (``loop.time() + total``) and never calls the duration a deadline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ._exceptions import ConfigurationError

__all__ = ["Timeout"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """The time limits of a request, in seconds; ``None`` means no limit.

    Pass it as ``Client(timeout=Timeout(...))`` or per call (``client.complete(...,
    timeout=Timeout(...))``); a plain number means ``Timeout(total=number)``. Per call,
    the fields given override the client's and the others are inherited.

    Attributes:
        total: The whole logical request: every attempt, retry, backoff and hedge. Past
            it, :class:`~asyncllm.DeadlineExceeded`.
        attempt: One attempt, from sending it to its last token:
            :class:`~asyncllm.ProviderTimeout`, and the strategy moves on.
        first_token: From sending an attempt to its first token. A ``complete`` call with
            this limit consumes a stream (only a stream shows the first token); the answer
            is the same.
        connect: Getting a connection. Applies to the providers the client builds from
            spec strings (``"openai:gpt-4o-mini"``); a driver object keeps its own
            ``connect_timeout=``.
        read: Longest wait for the next bytes of a response, for providers built from spec
            strings (a driver object keeps its own ``timeout=``).

    Raises:
        ConfigurationError: a limit that is not a number of seconds > 0.
    """

    total: float | None = None
    attempt: float | None = None
    first_token: float | None = None
    connect: float | None = None
    read: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or math.isnan(value)
                or not value > 0
            ):
                raise ConfigurationError(
                    f"Timeout.{f.name} must be a number of seconds > 0 or None, got {value!r}"
                )

    @classmethod
    def coerce(cls, value: float | Timeout | None, *, what: str = "timeout") -> Timeout:
        """``value`` as a ``Timeout``: a number is the total, ``None`` no limit at all."""
        if value is None:
            return _NONE
        if isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(
                f"{what} must be a number of seconds or a Timeout, got {type(value).__name__}"
            )
        if math.isnan(value) or not value > 0:
            raise ConfigurationError(f"{what} must be a number of seconds > 0, got {value!r}")
        return cls(total=float(value))

    def over(self, base: Timeout) -> Timeout:
        """These limits where set, ``base``'s elsewhere (a call's over its client's)."""
        if base is _NONE:
            return self
        if self is _NONE:
            return base
        return Timeout(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(_values(self), _values(base), strict=True)
            )
        )


def _values(t: Timeout) -> tuple[float | None, ...]:
    return (t.total, t.attempt, t.first_token, t.connect, t.read)


_NONE = Timeout()
