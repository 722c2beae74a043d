"""From what a caller passes (a prompt, message dicts, keyword parameters) to a
:class:`~asyncllm.ChatRequest`.

Above the value types (``_types.py``) and the typed tools (``tools/``): a pydantic
``response_format`` becomes the strict JSON schema it stands for, :class:`~asyncllm.tools.Tool`
objects and functions become tool specs, so everything below sees plain mappings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import InvalidRequestError
from ._messages import coerce_messages
from ._types import ChatRequest

__all__ = ["build_request"]


#: The parameters ``build_request`` accepts besides the messages.
REQUEST_PARAMS = _PARAMS = frozenset(
    {
        "model",
        "system",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "provider_options",
        "tags",
        "metadata",
    }
)


def build_request(messages: object, params: Mapping[str, Any]) -> ChatRequest:
    """Build a :class:`ChatRequest` from user input and keyword parameters.

    A ``ChatRequest`` passed as ``messages`` is used as is (``params`` override its fields).
    System messages given in ``messages`` are kept in order; ``system=`` is an extra system
    prompt placed before them.

    Raises:
        InvalidRequestError: for unknown parameters or values of the wrong type.
    """
    unknown = set(params) - _PARAMS
    if unknown:
        raise InvalidRequestError(
            f"unknown parameter(s) {sorted(unknown)}; pass provider-specific options "
            f"as provider_options={{...}}"
        )
    if isinstance(messages, ChatRequest):
        return dataclasses.replace(messages, **_checked(params)) if params else messages
    return ChatRequest(messages=coerce_messages(messages), **_checked(params))


def _checked(params: Mapping[str, Any]) -> dict[str, Any]:
    p = dict(params)
    for k in ("temperature", "top_p"):
        v = p.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise InvalidRequestError(f"{k} must be a number, got {type(v).__name__}")
    for k in ("max_tokens", "seed"):
        v = p.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidRequestError(f"{k} must be an int, got {type(v).__name__}")
    if p.get("max_tokens") is not None and p["max_tokens"] < 1:
        raise InvalidRequestError("max_tokens must be at least 1")
    stop = p.get("stop")
    if isinstance(stop, str):
        p["stop"] = (stop,)
    elif stop is not None:
        if not all(isinstance(s, str) for s in stop):
            raise InvalidRequestError("stop must be a string or a list of strings")
        p["stop"] = tuple(stop)
    fmt = p.get("response_format")
    if isinstance(fmt, type) and callable(getattr(fmt, "model_json_schema", None)):
        # A pydantic model given straight to a request (Client.complete also validates the
        # answer; here it only becomes the strict JSON schema it stands for). pydantic is
        # imported only when a typed value is passed.
        from .tools import cached_response_format

        p["response_format"] = cached_response_format(fmt)
    elif fmt is not None and not isinstance(fmt, Mapping):
        raise InvalidRequestError(
            f"response_format must be a dict or a pydantic model class, got {type(fmt).__name__}"
        )
    tools = p.get("tools")
    if tools is not None:
        if isinstance(tools, (str, Mapping)) or not isinstance(tools, Iterable):
            raise InvalidRequestError("tools must be a list of tools")
        if all(isinstance(t, Mapping) for t in tools):
            p["tools"] = tuple(tools)
        else:
            from .tools import as_spec

            p["tools"] = tuple(as_spec(t, i) for i, t in enumerate(tools))
    for k in ("system", "model"):
        v = p.get(k)
        if v is not None and not isinstance(v, str):
            raise InvalidRequestError(f"{k} must be a string, got {type(v).__name__}")
    return p
