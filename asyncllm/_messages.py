"""Reading chat messages from what a caller passes: a prompt, message dicts, messages.

Kept apart from the value types (``_types.py``), which raise nothing, so the exception
tree and the values do not import each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._exceptions import InvalidRequestError
from ._types import ROLES, Message, ToolCall

__all__ = ["coerce_messages"]


def _coerce_content(content: object, index: int) -> str | tuple[Mapping[str, Any], ...]:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts: list[Mapping[str, Any]] = []
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            elif isinstance(part, Mapping) and isinstance(part.get("type"), str):
                parts.append(part)
            else:
                raise InvalidRequestError(
                    f"messages[{index}].content: each part must be a string or a dict with "
                    f"a 'type', got {type(part).__name__}"
                )
        return tuple(parts)
    if content is None:
        return ""
    raise InvalidRequestError(
        f"messages[{index}].content must be a string or a list of parts, "
        f"got {type(content).__name__}"
    )


def _coerce_one(m: object, index: int) -> Message:
    if isinstance(m, Message):
        return m
    if not isinstance(m, Mapping):
        raise InvalidRequestError(
            f"messages[{index}] must be a dict with 'role' and 'content' or a Message, "
            f"got {type(m).__name__}"
        )
    role = m.get("role")
    if role not in ROLES:
        raise InvalidRequestError(
            f"messages[{index}].role must be one of {sorted(ROLES)}, got {role!r}"
        )
    if "content" not in m and not m.get("tool_calls"):
        raise InvalidRequestError(f"messages[{index}] has no 'content'")
    tool_calls = m.get("tool_calls")
    name = m.get("name")
    tool_call_id = m.get("tool_call_id")
    is_error = m.get("is_error", False)
    if not isinstance(is_error, bool) or (is_error and role != "tool"):
        raise InvalidRequestError(
            f"messages[{index}].is_error must be true or false, on a 'tool' message only; "
            f"got {is_error!r} on a {role!r} message"
        )
    return Message(
        role=role,
        content=_coerce_content(m.get("content"), index),
        name=name if isinstance(name, str) else None,
        tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
        tool_calls=(
            tuple(tc.to_dict() if isinstance(tc, ToolCall) else tc for tc in tool_calls)
            if tool_calls
            else None
        ),
        is_error=is_error,
    )


def coerce_messages(messages: object) -> tuple[Message, ...]:
    """Turn user input into a tuple of :class:`Message`.

    Accepts a plain prompt string (one user message), a :class:`Message`, one
    OpenAI-style dict, or a sequence of those.

    Raises:
        InvalidRequestError: when the input cannot be read as chat messages.
    """
    if isinstance(messages, str):
        if not messages:
            raise InvalidRequestError("the prompt is empty")
        return (Message(role="user", content=messages),)
    if isinstance(messages, (Message, Mapping)):
        return (_coerce_one(messages, 0),)
    if isinstance(messages, Iterable) and not isinstance(messages, (bytes, bytearray)):
        out = tuple(_coerce_one(m, i) for i, m in enumerate(messages))
        if not out:
            raise InvalidRequestError("messages is empty")
        return out
    raise InvalidRequestError(
        f"messages must be a prompt string or a list of message dicts, "
        f"got {type(messages).__name__}"
    )
