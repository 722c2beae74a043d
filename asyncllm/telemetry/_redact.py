"""A structlog processor that keeps API keys and bearer tokens out of logs.

Add it to your processor chain before the renderer::

    structlog.configure(processors=[..., redact_secrets, structlog.processors.JSONRenderer()])
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from .._exceptions import redact

__all__ = ["REDACTED", "redact_secrets", "redact_value"]

REDACTED = "[REDACTED]"

#: Keys whose values are secrets whatever they look like (compared lower-cased, with ``-``
#: read as ``_``): api keys, authorization headers, tokens, passwords.
_SECRET_KEY = re.compile(
    r"(^|_)(api_?key|x_api_key|authorization|proxy_authorization|auth_token|access_token|"
    r"refresh_token|bearer|secret|client_secret|password|passwd|cookie|set_cookie)$"
)

_MAX_DEPTH = 6

#: structlog's own keys whose values later processors need as they are (``exc_info`` is
#: turned into an ``exception`` string by ``format_exc_info``: put this processor after it
#: to scrub tracebacks too).
_LEAVE = frozenset({"exc_info", "stack_info"})


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key.lower().replace("-", "_")))


def redact_value(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secrets masked: strings scrubbed with
    :func:`asyncllm._exceptions.redact`, secret-named keys of mappings replaced, lists,
    tuples and sets walked (to a depth of 6). Other values are returned as they are."""
    if isinstance(value, str):
        return redact(value)
    if _depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if _is_secret_key(k) and v is not None else redact_value(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [redact_value(v, _depth + 1) for v in value]
        return items if isinstance(value, list) else type(value)(items)
    if isinstance(value, BaseException):
        # A rendered exception is a string later; scrub its message now.
        return redact(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: masks secret-named keys and key-shaped strings.

    Keys named like ``api_key``, ``authorization``, ``x-api-key``, ``password`` or
    ``*_token`` (at any depth of nested dicts, e.g. a ``headers`` dict) are replaced by
    ``"[REDACTED]"``; any string value that looks like an API key (``sk-...``,
    ``Bearer ...``, ``api_key=...``) has the key scrubbed. The event dict is changed in
    place and returned.
    """
    for k, v in list(event_dict.items()):
        if k in _LEAVE:
            continue
        if _is_secret_key(k) and v is not None:
            event_dict[k] = REDACTED
        elif isinstance(v, (str, Mapping, list, tuple, set, frozenset, BaseException)):
            event_dict[k] = redact_value(v)
    return event_dict
