"""JSON schemas from Python: pydantic models, function signatures, and the strict form.

The strict form is what both vendors' constrained decoding accepts (OpenAI's
``json_schema`` with ``strict: true`` and Anthropic's ``output_config.format``): every
object closed (``additionalProperties: false``) with every property required, ``$ref``
without siblings, and the value constraints neither vendor enforces alike (``minimum``,
``maxLength``, ``pattern``...) moved into the description, so the model still reads them.
asyncllm validates the answer against the full pydantic model afterwards, so a constraint
moved to the description is still enforced.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

import pydantic

from .._exceptions import ConfigurationError

__all__ = ["doc_params", "function_model", "strict_schema"]

# Constraints moved into the description (the API-portable subset keeps only structure).
_MOVED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The strict, vendor-portable form of a JSON schema (a new dict; the input is kept)."""
    out: dict[str, Any] = {}
    src = dict(schema)
    defs = src.pop("$defs", None)
    if isinstance(defs, Mapping):
        out["$defs"] = {k: strict_schema(v) for k, v in defs.items()}
    ref = src.pop("$ref", None)
    if ref is not None:
        out["$ref"] = ref
        if src.get("description"):
            out["description"] = src["description"]
        return out
    notes = []
    for key in _MOVED:
        if key in src:
            notes.append(f"{key}: {src.pop(key)}")
    if src.get("format") is not None and src["format"] not in _FORMATS:
        notes.append(f"format: {src.pop('format')}")
    if src.get("default", 0) is None:
        src.pop("default")
    elif "default" in src:
        # Strict decoding has no defaults: every property is required, so the model writes
        # the value; the description says what a sensible one is.
        notes.append(f"default: {src.pop('default')!r}")
    if notes:
        desc = src.get("description")
        src["description"] = ((desc + "\n") if desc else "") + "{" + ", ".join(notes) + "}"
    for combo in ("anyOf", "oneOf", "allOf"):
        variants = src.pop(combo, None)
        if isinstance(variants, list):
            if combo == "allOf" and len(variants) == 1:
                out.update(strict_schema(variants[0]))
                continue
            # oneOf is not accepted by strict decoding; anyOf says the same for disjoint types.
            out["anyOf" if combo != "allOf" else "allOf"] = [strict_schema(v) for v in variants]
    for key, value in src.items():
        if key == "properties" and isinstance(value, Mapping):
            out["properties"] = {k: strict_schema(v) for k, v in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out["items"] = strict_schema(value)
        elif key == "prefixItems" and isinstance(value, list):
            out["prefixItems"] = [strict_schema(v) for v in value]
        elif key == "additionalProperties" and isinstance(value, Mapping):
            # Open-ended maps are not strict-compatible; keep the value schema as a hint.
            continue
        else:
            out[key] = value
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
        out.setdefault("properties", {})
    return out


_ARGS = re.compile(r"^\s*(Args|Arguments|Parameters|Params):\s*$", re.M)
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]+:\s*$")
_PARAM = re.compile(r"^(\s*)(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def doc_params(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(summary, {parameter: description})`` of a Google-style docstring.

    The summary is the text before the first section (``Args:``, ``Returns:``...).
    """
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if _SECTION.match(line):
            break
        summary.append(line)
    params: dict[str, str] = {}
    m = _ARGS.search(doc)
    if m:
        current: str | None = None
        indent: int | None = None
        for line in doc[m.end() :].splitlines()[1:] if doc[m.end() :].startswith("\n") else []:
            if not line.strip():
                continue
            width = len(line) - len(line.lstrip())
            if width == 0:
                break  # the next section
            pm = _PARAM.match(line)
            if pm and (indent is None or width == indent):
                indent = width
                current = pm.group(2).lstrip("*")
                params[current] = pm.group(3).strip()
            elif current is not None:
                params[current] = (params[current] + " " + line.strip()).strip()
    return "\n".join(summary).strip(), params


def function_model(fn: Callable[..., Any], name: str) -> tuple[type[pydantic.BaseModel], str]:
    """A pydantic model of ``fn``'s parameters, and ``fn``'s description.

    Parameter types come from the type hints (``Any`` when missing), defaults from the
    signature, descriptions from the docstring's ``Args:`` section (or from
    ``Annotated[..., Field(description=...)]``).

    Raises:
        ConfigurationError: ``fn`` takes ``*args``/``**kwargs``/positional-only
            parameters, or its hints cannot be resolved.
    """
    sig = inspect.signature(fn)
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ConfigurationError(
            f"tool {name!r}: cannot resolve the type hints of {fn!r}: {exc}"
        ) from exc
    summary, described = doc_params(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    for pname, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise ConfigurationError(
                f"tool {name!r}: parameter {pname!r} is {p.kind.description}; a tool takes "
                f"named arguments only"
            )
        annotation = hints.get(pname, Any)
        default = ... if p.default is p.empty else p.default
        desc = described.get(pname)
        # Without a docstring line the default alone: a Field(description=None) would
        # hide a description given in Annotated[..., Field(description=...)].
        fields[pname] = (annotation, pydantic.Field(default, description=desc) if desc else default)
    model = pydantic.create_model(
        _model_name(name),
        __config__=pydantic.ConfigDict(extra="forbid", protected_namespaces=()),
        **fields,
    )
    return model, summary


def _model_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name) if part) or "Args"
