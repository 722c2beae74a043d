"""The cache key: a versioned, canonical form of everything that changes a response.

Two requests share a key exactly when they would send the same thing to the same providers,
after undoing what users vary by accident:

* dict key order, at every depth (tools, ``response_format``, ``provider_options``,
  content parts, assistant tool calls);
* Unicode form (NFC) of every string;
* in prompt text (``system``, message content, text parts): line endings (``\\r\\n`` and
  ``\\r`` become ``\\n``) and trailing whitespace, per line and at the end; with
  ``fold_whitespace=True`` every run of whitespace becomes one space and the text is
  stripped at both ends;
* a plain string versus a content list holding one ``{"type": "text", "text": ...}`` part;
* ``stop`` as a string versus a list (stop sequences are also de-duplicated and sorted:
  their order never changes the output);
* ``0`` versus ``0.0`` (integral floats become integers everywhere); empty ``stop``,
  ``tools`` and ``provider_options`` versus none.

Left out because they never change the output: ``tags``, ``metadata``, timeouts, request ids,
and credentials. Credentials are stripped from ``provider_options`` by this rule, at any
depth: an entry is dropped when its name (lower-cased, ``-`` read as ``_``) is or ends in
``api_key``/``apikey``, ``authorization``, ``auth``, ``token``, ``secret``, ``password``,
``passwd``, ``cookie``, ``bearer`` or ``credential(s)`` (so ``x-api-key``,
``Authorization``, ``access_token`` and ``client_secret`` go, ``max_tokens`` stays), or
when its value is a string shaped like a key or bearer token (the test
:func:`asyncllm._exceptions.redact` uses).

Strings inside structured values (tools, schemas, provider options) are only NFC-normalized:
whitespace inside a JSON value may be meaningful. Order *between* tools, messages and content
parts is kept: it changes what the model sees.

The canonical form is serialized with orjson (``OPT_SORT_KEYS``) and hashed with SHA-256; a
namespace, when given, is hashed in too and written in clear in the key's prefix, so tenants
never share an entry and a Redis ``SCAN`` can find one tenant's keys.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import orjson

from .._exceptions import InvalidRequestError, redact

if TYPE_CHECKING:
    from .._hooks import Route
    from .._types import ChatRequest, Message

__all__ = [
    "KEY_PREFIX",
    "KEY_VERSION",
    "cache_key",
    "canonical_request",
    "check_namespace",
    "is_secret_name",
    "normalize_text",
]

#: Bumped whenever the canonical form changes, so old entries are never misread.
KEY_VERSION = 1
#: Every key starts with this.
KEY_PREFIX = f"asyncllm:v{KEY_VERSION}:"

_SECRET_NAME = re.compile(
    r"^(?:.*_)?(?:api_?key|apikey|authorization|auth|token|secret|password|passwd|cookie|"
    r"bearer|credentials?)$"
)
_TRAILING_WS = re.compile(r"[^\S\n]+(?=\n)")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")
# orjson serializes 64-bit integers only; floats past 2**53 are not exact integers anyway.
_MAX_INT = 2**63 - 1
_EXACT_FLOAT_INT = 2**53


def is_secret_name(name: str) -> bool:
    """Whether a ``provider_options`` entry named ``name`` is treated as a credential."""
    return _SECRET_NAME.match(name.lower().replace("-", "_")) is not None


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is valid: 1-128 letters, digits and ``_.-/``.

    Raises:
        InvalidRequestError: otherwise.
    """
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise InvalidRequestError(
            "cache namespace must be 1-128 characters of letters, digits and _.-/"
        )
    return namespace


def _nfc(s: str) -> str:
    # ASCII is always NFC; skipping the call keeps the common case cheap.
    return s if s.isascii() else unicodedata.normalize("NFC", s)


def normalize_text(s: str, *, fold_whitespace: bool = False) -> str:
    """Normalize prompt text as the key sees it (see the module docstring)."""
    s = _nfc(s)
    if fold_whitespace:
        return " ".join(s.split())
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" in s:
        s = _TRAILING_WS.sub("", s)
    return s.rstrip()


def _number(x: float, where: str) -> int | float:
    if not math.isfinite(x):
        raise InvalidRequestError(f"{where}: {x!r} is not a finite number")
    if x.is_integer() and abs(x) < _EXACT_FLOAT_INT:
        return int(x)
    return x


class _Unkeyable(Exception):
    """A value that cannot be part of a key; ``path`` grows while the error unwinds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = ""


def _value(v: object, strip_secrets: bool = False) -> Any:
    """A JSON value in canonical form (mappings to dicts, tuples to lists, numbers unified).

    Exact-type checks first: this runs for every node of every tool schema on every
    request, and ``isinstance(v, Mapping)`` alone costs more than the rest of the node.
    """
    t = type(v)
    if t is str:
        return _nfc(cast(str, v))
    if t is dict or (t is not list and t is not tuple and isinstance(v, Mapping)):
        out: dict[str, Any] = {}
        for k, item in cast("Mapping[object, object]", v).items():
            if type(k) is not str:
                raise _Unkeyable(f"keys must be strings, got {type(k).__name__}")
            if strip_secrets and (
                is_secret_name(k) or (type(item) is str and redact(item) != item)
            ):
                continue
            try:
                out[_nfc(k)] = _value(item, strip_secrets)
            except _Unkeyable as exc:
                exc.path = f".{k}{exc.path}"
                raise
        return out
    if t is list or t is tuple:
        items: list[Any] = []
        for i, item in enumerate(cast("Sequence[object]", v)):
            try:
                items.append(_value(item, strip_secrets))
            except _Unkeyable as exc:
                exc.path = f"[{i}]{exc.path}"
                raise
        return items
    if v is None or t is bool:
        return v
    if t is int or (isinstance(v, int) and not isinstance(v, bool)):
        n = int(v)  # type: ignore[call-overload]
        if abs(n) > _MAX_INT:
            raise _Unkeyable(f"integer {n} is too large to cache")
        return n
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _Unkeyable(f"{v!r} is not a finite number")
        return int(v) if v.is_integer() and abs(v) < _EXACT_FLOAT_INT else float(v)
    if isinstance(v, str):
        return _nfc(str(v))
    raise _Unkeyable(f"{t.__name__} is not a JSON value and cannot be part of a cache key")


def _field(v: object, where: str, strip_secrets: bool = False) -> Any:
    try:
        return _value(v, strip_secrets)
    except _Unkeyable as exc:
        raise InvalidRequestError(f"{where}{exc.path}: {exc.message}") from None


def _content(content: object, where: str, fold: bool) -> Any:
    if isinstance(content, str):
        return normalize_text(content, fold_whitespace=fold)
    if not isinstance(content, Sequence):
        raise InvalidRequestError(f"{where}: content must be a string or a list of parts")
    parts: list[Any] = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            parts.append({"type": "text", "text": normalize_text(part, fold_whitespace=fold)})
            continue
        p = _field(part, f"{where}[{i}]")
        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str):
            p["text"] = normalize_text(p["text"], fold_whitespace=fold)
        parts.append(p)
    # One bare text part is the same request as the plain string (drivers send either).
    only = parts[0] if len(parts) == 1 else None
    if (
        isinstance(only, dict)
        and only.keys() == {"type", "text"}
        and only["type"] == "text"
        and isinstance(only["text"], str)
    ):
        return only["text"]
    return parts


def _message(m: Message, i: int, fold: bool) -> dict[str, Any]:
    where = f"messages[{i}]"
    out: dict[str, Any] = {"role": m.role, "content": _content(m.content, where, fold)}
    if m.name is not None:
        out["name"] = _nfc(m.name)
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.tool_calls:
        out["tool_calls"] = _field(m.tool_calls, f"{where}.tool_calls")
    if m.is_error:
        out["is_error"] = True
    return out


def _stop(stop: object) -> list[str] | None:
    if stop is None:
        return None
    seq: Sequence[object] = (stop,) if isinstance(stop, str) else stop  # type: ignore[assignment]
    if not isinstance(seq, Sequence) or not all(isinstance(s, str) for s in seq):
        raise InvalidRequestError("stop must be a string or a list of strings")
    out = sorted({_nfc(s) for s in seq if isinstance(s, str)})
    return out or None


def _param_number(v: object, name: str) -> int | float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidRequestError(f"{name} must be a number, got {type(v).__name__}")
    return _number(float(v), name) if isinstance(v, float) else v


def canonical_request(
    request: ChatRequest, route: Route, *, fold_whitespace: bool = False
) -> dict[str, Any]:
    """The canonical form of ``request`` on ``route`` that the key hashes.

    Useful to see why two requests do or do not share a key.

    Raises:
        InvalidRequestError: when a value cannot be represented (a non-finite number, a
            non-string dict key, an object that is not a JSON value).
    """
    options = request.provider_options
    return {
        "v": KEY_VERSION,
        "route": [[str(name), str(kind), str(model)] for name, kind, model in route],
        "model": request.model,
        "system": (
            None
            if request.system is None
            else normalize_text(request.system, fold_whitespace=fold_whitespace)
        ),
        "messages": [_message(m, i, fold_whitespace) for i, m in enumerate(request.messages)],
        "temperature": _param_number(request.temperature, "temperature"),
        "top_p": _param_number(request.top_p, "top_p"),
        "max_tokens": _param_number(request.max_tokens, "max_tokens"),
        "seed": _param_number(request.seed, "seed"),
        "stop": _stop(request.stop),
        "response_format": _field(request.response_format, "response_format") or None,
        "tools": _field(request.tools, "tools") or None,
        "tool_choice": _field(request.tool_choice, "tool_choice"),
        "provider_options": (
            _field(options, "provider_options", strip_secrets=True) or None
            if options is not None
            else None
        ),
    }


def cache_key(
    request: ChatRequest,
    route: Route,
    *,
    namespace: str | None = None,
    fold_whitespace: bool = False,
) -> str:
    """The cache key of ``request`` answered by ``route``.

    Args:
        request: The request.
        route: ``(provider name, kind, model)`` of every provider that may answer, in
            strategy order.
        namespace: Separates tenants: letters, digits and ``_.-/``, at most 128 characters.
        fold_whitespace: Treat every run of whitespace in prompt text as one space.

    Returns:
        ``"asyncllm:v1:" + [namespace + ":"] + sha256 hex digest``.

    Raises:
        InvalidRequestError: for values that cannot be part of a key, or a bad namespace.
    """
    canon = canonical_request(request, route, fold_whitespace=fold_whitespace)
    if namespace is not None:
        canon["namespace"] = check_namespace(namespace)
    try:
        blob = orjson.dumps(canon, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # e.g. a lone surrogate in a string
        raise InvalidRequestError(f"request cannot be part of a cache key: {exc}") from None
    digest = hashlib.sha256(blob).hexdigest()
    return f"{KEY_PREFIX}{namespace}:{digest}" if namespace else f"{KEY_PREFIX}{digest}"
