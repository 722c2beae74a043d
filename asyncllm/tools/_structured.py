"""Structured output: ``response_format=`` a pydantic model, and validating the answer."""

from __future__ import annotations

import functools
import re
from typing import Any

import pydantic

from .._exceptions import StructuredOutputError
from .._types import Response
from ._schema import strict_schema
from ._tool import _copy, validation_text

__all__ = ["cached_response_format", "parse_output", "response_format_for", "retry_prompt"]

_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def response_format_for(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The ``response_format`` asking for JSON that fits ``model``.

    OpenAI-format providers get ``{"type": "json_schema", "json_schema": {"name",
    "schema", "strict": true}}``; the Anthropic drivers turn the same value into
    ``output_config.format`` (structured outputs). The schema is the strict form of the
    model's JSON schema (:func:`~asyncllm.tools.strict_schema`), and, being part of the
    request, part of the cache key.
    """
    fmt: dict[str, Any] = _copy(cached_response_format(model))
    return fmt


@functools.lru_cache(maxsize=256)
def cached_response_format(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    # Generating a model's JSON schema costs far more than copying it: once per model.
    schema = strict_schema(model.model_json_schema())
    name = _NAME.sub("_", model.__name__)[:64] or "output"
    spec: dict[str, Any] = {"name": name, "schema": schema, "strict": True}
    if model.__doc__:
        doc = model.__doc__.strip()
        if doc:
            spec["description"] = doc.split("\n\n", 1)[0]
    return {"type": "json_schema", "json_schema": spec}


def parse_output(
    model: type[pydantic.BaseModel], response: Response, *, attempts: int = 1
) -> pydantic.BaseModel:
    """``response.text`` validated into ``model``.

    Raises:
        StructuredOutputError: the text is not JSON fitting ``model`` (cut short by
            ``max_tokens``, refused, or wrong); it carries the raw text and the response.
    """
    text = response.text
    try:
        return model.model_validate_json(text)
    except pydantic.ValidationError as exc:
        errors = validation_text(exc).split("; ")
        why = "; ".join(errors[:5])
        if response.finish_reason == "length":
            why = f"the answer was cut at max_tokens ({why})"
        elif response.finish_reason == "content_filter":
            why = f"the model refused or was filtered ({why})"
        raise StructuredOutputError(
            f"the answer does not validate against {model.__name__} "
            f"(after {attempts} attempt(s)): {why}",
            raw_text=text,
            errors=errors,
            response=response,
            attempts=attempts,
        ) from exc


def retry_prompt(error: StructuredOutputError) -> str:
    """The message that shows the model why its answer was rejected."""
    lines = "\n".join(f"- {e}" for e in error.errors)
    return (
        "Your previous answer did not validate against the required JSON schema:\n"
        f"{lines}\n"
        "Answer again with only a JSON object that fits the schema."
    )
