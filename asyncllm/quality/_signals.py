"""What an answer says about its provider's quality: :class:`Quality` and :func:`assess`.

The orchestrator assesses every answer an attempt gets (accepted or rejected) and hands the
result to the observers on :attr:`AttemptInfo.quality <asyncllm._hooks.AttemptInfo>`, so
metrics, logs and traces count, per provider and model:

* the finish reason, in six categories: ``stop``, ``length`` (truncated), ``tool_calls``,
  ``content_filter``, ``refusal`` (Anthropic's ``stop_reason: "refusal"``, OpenAI's
  ``message.refusal``), ``other`` (and ``unknown`` when the provider sent none);
* empty answers (no text and no tool call);
* structured output that is not valid JSON or does not match the requested JSON schema
  (only when the request asked for JSON through ``response_format``);
* tool calls whose arguments are not a JSON object matching the tool's parameter schema;
* output tokens.

Assessment is cheap (a few attribute reads) unless the request asked for JSON or tools,
and then it parses what it must validate, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

# The values live with the other info types observers receive (asyncllm.abc).
from .._hooks import FINISH_CATEGORIES, FinishCategory, Quality

if TYPE_CHECKING:
    from .._types import ChatRequest, Response

__all__ = ["FINISH_CATEGORIES", "FinishCategory", "Quality", "assess", "finish_category"]

_REFUSALS = frozenset({"refusal"})


def finish_category(response: Response) -> FinishCategory:
    """The finish category of ``response``."""
    if response.raw_finish_reason in _REFUSALS:
        return "refusal"
    finish = response.finish_reason
    if finish is None:
        return "unknown"
    return finish


def assess(request: ChatRequest, response: Response, rejected: str | None = None) -> Quality:
    """The quality signals of ``response`` to ``request``."""
    text = response.text
    calls = response.tool_calls
    fmt = request.response_format
    if fmt is None and not calls:  # the common case: nothing to parse
        return Quality(
            finish_category(response),
            not text or text.isspace(),
            False,
            False,
            0,
            0,
            None if response.usage is None else response.usage.output_tokens,
            rejected,
        )
    structured = invalid_json = False
    if fmt is not None:
        schema, structured = _format_schema(fmt)
        if structured:
            invalid_json = json_error(text, schema) is not None
    bad_args = 0
    if calls:
        schemas = _tool_schemas(request.tools)
        for call in calls:
            schema = schemas.get(call.name)
            if schema is None or json_error(call.arguments or "{}", schema, obj=True) is not None:
                bad_args += 1
    return Quality(
        finish_category(response),
        not calls and (not text or text.isspace()),
        structured,
        invalid_json,
        len(calls),
        bad_args,
        None if response.usage is None else response.usage.output_tokens,
        rejected,
    )


def _format_schema(fmt: Any) -> tuple[Any, bool]:
    """``(schema or None, asks for JSON)`` of a ``response_format`` value."""
    if isinstance(fmt, Mapping):
        kind = fmt.get("type")
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            return (schema if isinstance(schema, Mapping) else None), True
        return None, kind == "json_object"
    schema_of = getattr(fmt, "model_json_schema", None)  # a pydantic model class
    if callable(schema_of):
        try:
            return schema_of(), True
        except Exception:
            return None, True
    return None, False


def _tool_schemas(tools: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in tools or ():
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        spec = fn if isinstance(fn, Mapping) else tool
        name = spec.get("name") if isinstance(spec, Mapping) else None
        if isinstance(name, str):
            schema = spec.get("parameters", spec.get("input_schema"))
            out[name] = schema if isinstance(schema, Mapping) else {}
    return out


def json_error(text: str, schema: Any = None, *, obj: bool = False) -> str | None:
    """Why ``text`` is not a JSON value matching ``schema`` (``None`` when it is).

    ``obj`` requires a JSON object. The schema check covers what structured-output modes
    use: ``type``, ``properties``, ``required``, ``additionalProperties``, ``items``,
    ``enum``, ``const``, ``anyOf``/``oneOf``/``allOf`` and local ``$ref``s (``#/$defs/...``);
    other keywords are not checked.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})"
    if obj and not isinstance(value, dict):
        return f"expected a JSON object, got {_type_name(value)}"
    if isinstance(schema, Mapping) and schema:
        return schema_error(value, schema, schema, "$")
    return None


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_name(value: Any) -> str:
    for name, types in _TYPES.items():
        if isinstance(value, types) and not (isinstance(value, bool) and name != "boolean"):
            return name
    return type(value).__name__


def _is(value: Any, kind: str) -> bool:
    types = _TYPES.get(kind)
    if types is None:
        return True
    if isinstance(value, bool) and kind != "boolean":
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, types)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    seen = 0
    while isinstance(ref, str) and ref.startswith("#/") and seen < 32:
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            return {}
        schema, ref, seen = node, node.get("$ref"), seen + 1
    return schema


def schema_error(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], path: str
) -> str | None:
    """Why ``value`` does not match ``schema`` (``None`` when it does); see :func:`json_error`."""
    schema = _resolve(schema, root)
    kind = schema.get("type")
    if isinstance(kind, str) and not _is(value, kind):
        return f"{path}: expected {kind}, got {_type_name(value)}"
    if isinstance(kind, list) and not any(_is(value, k) for k in kind if isinstance(k, str)):
        return f"{path}: expected one of {kind}, got {_type_name(value)}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: expected {schema['const']!r}"
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"{path}: {value!r} is not one of {enum}"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if (
            isinstance(options, list)
            and options
            and all(
                schema_error(value, o, root, path) is not None
                for o in options
                if isinstance(o, Mapping)
            )
        ):
            return f"{path}: matches none of {key}"
    for sub in schema.get("allOf") or ():
        if isinstance(sub, Mapping) and (err := schema_error(value, sub, root, path)):
            return err
    if isinstance(value, dict):
        return _object_error(value, schema, root, path)
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        for i, item in enumerate(value):
            if err := schema_error(item, items, root, f"{path}[{i}]"):
                return err
    return None


def _object_error(
    value: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: str
) -> str | None:
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    for name in schema.get("required") or ():
        if name not in value:
            return f"{path}: missing required property {name!r}"
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = props.get(name)
        if isinstance(sub, Mapping):
            if err := schema_error(item, sub, root, f"{path}.{name}"):
                return err
        elif extra is False:
            return f"{path}: unexpected property {name!r}"
        elif isinstance(extra, Mapping) and (
            err := schema_error(item, extra, root, f"{path}.{name}")
        ):
            return err
    return None
