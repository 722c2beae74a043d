"""Request ids: one per logical request, visible to logs through ``contextvars``.

The id is bound twice for the duration of the request: in asyncllm's own context variable
(:func:`current_request_id`) and in structlog's context-local context under
``asyncllm_request_id``, so any structlog call made while the request runs (by the
application, a driver or an observer) carries it when the application's structlog
configuration merges contextvars. Tasks started for races and hedges copy the context, so
every attempt sees its request's id. The structlog binding is made only when the
application has imported structlog (asyncllm does not import it: see ``_logging``).
"""

from __future__ import annotations

import contextvars
import os
from itertools import count

from .._logging import loaded_structlog

__all__ = ["bind_request_id", "current_request_id", "new_request_id", "unbind_request_id"]

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "asyncllm_request_id", default=None
)
_STRUCTLOG_KEY = "asyncllm_request_id"
# A random per-process prefix and a counter: unique, sortable within a process, and
# cheaper than a UUID on the hot path.
_PREFIX = "req_" + os.urandom(5).hex()
_COUNTER = count(1)

Binding = tuple[contextvars.Token[str | None], object | None]


def new_request_id() -> str:
    """A fresh request id such as ``req_3f9a1c02d7_1a``."""
    return f"{_PREFIX}_{next(_COUNTER):x}"


def current_request_id() -> str | None:
    """The id of the logical request running in this context, if any."""
    return _REQUEST_ID.get()


def bind_request_id(request_id: str) -> Binding:
    """Bind ``request_id`` in this context; undo with :func:`unbind_request_id`."""
    mod = loaded_structlog()
    tokens = (
        None if mod is None else mod.contextvars.bind_contextvars(**{_STRUCTLOG_KEY: request_id})
    )
    return _REQUEST_ID.set(request_id), tokens


def unbind_request_id(binding: Binding) -> None:
    """Restore what :func:`bind_request_id` replaced.

    A binding made in another context (a stream entered in one task and closed in another)
    cannot be reset there; the other context is left as it is.
    """
    token, tokens = binding
    try:
        _REQUEST_ID.reset(token)
        if tokens is not None:
            mod = loaded_structlog()
            if mod is not None:
                mod.contextvars.reset_contextvars(**tokens)  # type: ignore[arg-type]
    except ValueError:
        pass
