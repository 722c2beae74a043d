"""Secrets kept out of every error and log line, by value and by shape.

Drivers register the keys they were configured with (:func:`register_secret`: any shape,
any length); :func:`redact` replaces those values, and the known shapes of keys and bearer
tokens, in a text; :func:`scrub_exception` does it to an exception in place (its message,
args, notes, its chain and, for groups, its sub-exceptions), before any observer logs it
or the caller sees it. The exception tree (``_exceptions.py``) redacts provider messages
with the same function.
"""

from __future__ import annotations

import re

__all__ = ["MIN_SUBSTRING_SECRET", "redact", "register_secret", "scrub_exception"]

_KEY_RE = re.compile(
    r"(sk-(?:ant-)?[A-Za-z0-9_\-]{6,}|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{8,}|"
    r"(?i:api[_-]?key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-\.]{8,})"
)


#: Registered secrets at least this long are scrubbed wherever they occur; shorter ones
#: only as whole words.
MIN_SUBSTRING_SECRET = 6

_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    """Scrub ``value`` (a configured API key or secret header value) from all error text.

    Drivers call this for every secret they are configured with; applications may call it
    for secrets of their own. Registrations last for the process (a secret stays a secret
    after its client closed). Non-strings and empty values are ignored.
    """
    global _secret_re
    if not isinstance(value, str):
        return
    candidates = {value.strip()}
    scheme, _, token = value.strip().partition(" ")
    if token and scheme.lower() in ("bearer", "basic", "token"):
        candidates.add(token.strip())  # "Bearer <key>": the key alone is the secret
    new = {c for c in candidates if c and c not in _secrets}
    if not new:
        return
    _secrets.update(new)
    parts = []
    for s in sorted(_secrets, key=len, reverse=True):  # longest first: no partial matches
        if len(s) >= MIN_SUBSTRING_SECRET:
            parts.append(re.escape(s))
        else:
            parts.append(r"(?<![\w\-])" + re.escape(s) + r"(?![\w\-])")
    _secret_re = re.compile("|".join(parts))


def redact(text: str) -> str:
    """Replace anything shaped like an API key or bearer token, and every registered
    secret (:func:`register_secret`), with ``[REDACTED]``."""
    text = _KEY_RE.sub("[REDACTED]", text)
    if _secret_re is not None:
        text = _secret_re.sub("[REDACTED]", text)
    return text


def _leaks(text: str) -> bool:
    return redact(text) != text


def scrub_exception(exc: BaseException) -> BaseException:
    """Scrub secrets from ``exc`` in place and return it.

    Walks the error, its ``__cause__``/``__context__`` chain, the sub-exceptions of
    exception groups and ``__notes__``: string ``args``, notes and ``message``/``msg``
    attributes are redacted. A foreign exception whose ``str``/``repr`` still shows a
    secret afterwards (a custom ``__str__``) is replaced in the chain by a
    :class:`RuntimeError` carrying its redacted text.
    """
    seen: set[int] = set()
    _scrub(exc, seen, 0)
    return exc


def _scrub(exc: BaseException, seen: set[int], depth: int) -> None:
    if id(exc) in seen or depth > 32:
        return
    seen.add(id(exc))
    try:
        if any(isinstance(a, str) and _leaks(a) for a in exc.args):
            exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
        for attr in ("message", "msg"):
            v = getattr(exc, attr, None)
            if isinstance(v, str) and _leaks(v):
                setattr(exc, attr, redact(v))
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [redact(n) if isinstance(n, str) else n for n in notes]
    except (AttributeError, TypeError):  # read-only attributes of an odd exception
        pass
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            _scrub(sub, seen, depth + 1)
    for link in ("__cause__", "__context__"):
        nxt = getattr(exc, link)
        if nxt is None:
            continue
        _scrub(nxt, seen, depth + 1)
        if _leaks(_text(nxt)):
            stand_in = RuntimeError(redact(f"{type(nxt).__name__}: {_text(nxt)}"))
            seen.add(id(stand_in))
            setattr(exc, link, stand_in)


def _text(exc: BaseException) -> str:
    try:
        return f"{exc} {exc!r}"
    except Exception:
        return type(exc).__name__
