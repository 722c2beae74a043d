"""Acceptance predicates: ``accept=`` on the client and per call.

A predicate is a function of the :class:`~asyncllm.Response`, plain or ``async``, that
returns its verdict:

* ``None`` or ``True``: accepted;
* a non-empty string: rejected, and the string is the reason;
* ``False``: rejected (the reason is the predicate's name).

``accept=`` takes one predicate or a sequence of them (all must accept; the first
rejection wins, later ones are not run). A predicate that *raises* is a bug, not a verdict
on the provider: the exception fails the logical request as it is.

The ready-made predicates return reasons that start with a stable code (``truncated``,
``empty``, ``refusal``, ``content_filter``, ``invalid_json``, ``invalid_output``,
``invalid_tool_arguments``) followed by ``": "`` and details, so metrics can count
rejections by code (:func:`reason_code`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from .._exceptions import ConfigurationError
from ._signals import _tool_schemas, finish_category, json_error

if TYPE_CHECKING:
    from .._types import Response

__all__ = [
    "Accept",
    "Predicate",
    "Verdict",
    "all_of",
    "coerce_accept",
    "judge",
    "matches",
    "no_content_filter",
    "no_refusal",
    "not_empty",
    "not_truncated",
    "reason_code",
    "valid_json",
    "valid_tool_arguments",
]

#: What a predicate returns: ``None``/``True`` accept; ``False`` or a reason rejects.
Verdict: TypeAlias = "bool | str | None"
#: A function of the response giving a verdict, plain or async.
Predicate: TypeAlias = "Callable[[Response], Verdict | Awaitable[Verdict]]"
#: What ``accept=`` takes: one predicate or several (all must accept).
Accept: TypeAlias = "Predicate | Sequence[Predicate]"

Checks: TypeAlias = "tuple[Predicate, ...]"


def coerce_accept(value: object, where: str = "accept") -> Checks | None:
    """``accept=`` as a tuple of predicates (``None`` stays ``None``: not given).

    Raises:
        ConfigurationError: for anything that is not a callable or a sequence of them.
    """
    if value is None:
        return None
    if callable(value):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        checks = tuple(value)
        for i, check in enumerate(checks):
            if not callable(check):
                raise ConfigurationError(
                    f"{where}[{i}] must be a function of the response, got {type(check).__name__}"
                )
        return checks
    raise ConfigurationError(
        f"{where} must be a function of the response or a list of them, got {type(value).__name__}"
    )


def _name(check: Any) -> str:
    return str(getattr(check, "__name__", None) or type(check).__name__)


async def judge(checks: Checks, response: Response) -> str | None:
    """Run ``checks`` on ``response``: the first rejection's reason, or ``None``."""
    for check in checks:
        verdict = check(response)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is None or verdict is True:
            continue
        if verdict is False:
            return f"rejected by {_name(check)}"
        if isinstance(verdict, str):
            return verdict or f"rejected by {_name(check)}"
        raise TypeError(
            f"acceptance predicate {_name(check)} returned {type(verdict).__name__}; "
            "return None/True to accept, False or a reason string to reject"
        )
    return None


def reason_code(reason: str) -> str:
    """The code of a rejection reason: the part before ``": "`` (at most 40 characters)."""
    head = reason.split(":", 1)[0].strip()
    return head[:40] or "rejected"


def all_of(*checks: Predicate) -> Predicate:
    """One predicate that accepts when every one of ``checks`` does (first reason wins)."""
    coerced = coerce_accept(checks, "all_of") or ()

    async def all_of(response: Response) -> Verdict:
        return await judge(coerced, response)

    return all_of


def not_truncated(response: Response) -> Verdict:
    """Reject an answer cut off by the output limit (``finish_reason == "length"``)."""
    if response.finish_reason == "length":
        usage = response.usage
        if usage is None:
            return "truncated: finish_reason=length"
        return f"truncated: finish_reason=length after {usage.output_tokens} tokens"
    return None


def not_empty(response: Response) -> Verdict:
    """Reject an answer with no text (or only whitespace) and no tool call."""
    if not response.tool_calls and not response.text.strip():
        return "empty: no text and no tool call"
    return None


def no_content_filter(response: Response) -> Verdict:
    """Reject an answer the provider's content filter stopped (not a refusal)."""
    if finish_category(response) == "content_filter":
        return "content_filter: the provider's content filter stopped the answer"
    return None


def no_refusal(response: Response | None = None, *, phrases: Sequence[str] = ()) -> Any:
    """Reject a refusal: the provider's refusal signal, and optionally answers that start
    with one of ``phrases`` (case-insensitive).

    Use it as it is (``accept=no_refusal``) or configured
    (``accept=no_refusal(phrases=["I can't", "I cannot"])``).
    """
    if response is None:
        lowered = tuple(p.lower() for p in phrases)

        def no_refusal_phrases(r: Response) -> Verdict:
            verdict = _refusal(r)
            if verdict is None and lowered:
                start = r.text.lstrip()[:200].lower()
                for p in lowered:
                    if start.startswith(p):
                        return f"refusal: the answer starts with {p!r}"
            return verdict

        return no_refusal_phrases
    return _refusal(response)


def _refusal(response: Response) -> Verdict:
    if finish_category(response) == "refusal":
        return f"refusal: finish_reason={response.raw_finish_reason}"
    return None


def valid_json(schema: Mapping[str, Any] | None = None) -> Predicate:
    """A predicate rejecting text that is not JSON (matching ``schema`` when given).

    Args:
        schema: A JSON schema (the subset described in :func:`~._signals.json_error`).
    """

    def valid_json(response: Response) -> Verdict:
        err = json_error(response.text, schema)
        return None if err is None else f"invalid_json: {err}"

    return valid_json


def matches(model: Any) -> Predicate:
    """A predicate rejecting text that does not validate against a pydantic model (or any
    type pydantic can validate: ``list[Item]``, a ``TypedDict``...), as JSON.

    Args:
        model: The pydantic model or type.
    """
    from pydantic import TypeAdapter, ValidationError

    adapter: Any = TypeAdapter(model)
    name = getattr(model, "__name__", str(model))

    def matches(response: Response) -> Verdict:
        try:
            adapter.validate_json(response.text)
        except ValidationError as exc:
            errors = exc.errors()
            if not errors:
                return f"invalid_output: not a valid {name}"
            where = ".".join(str(p) for p in errors[0]["loc"]) or "$"
            return f"invalid_output: not a valid {name} ({where}: {errors[0]['msg']})"
        return None

    return matches


def valid_tool_arguments(tools: Sequence[Mapping[str, Any]]) -> Predicate:
    """A predicate rejecting tool calls whose arguments do not match their tool's schema.

    Args:
        tools: The tools offered (as passed to ``tools=``): OpenAI-style
            ``{"type": "function", "function": {"name", "parameters"}}`` or
            ``{"name", "input_schema"}``.
    """
    schemas = _tool_schemas(tools)

    def valid_tool_arguments(response: Response) -> Verdict:
        for call in response.tool_calls:
            schema = schemas.get(call.name)
            if schema is None:
                return f"invalid_tool_arguments: unknown tool {call.name!r}"
            err = json_error(call.arguments or "{}", schema, obj=True)
            if err is not None:
                return f"invalid_tool_arguments: {call.name}: {err}"
        return None

    return valid_tool_arguments
