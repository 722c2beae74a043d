"""What the simulator answers: a wire-neutral request and a deterministic output plan.

Both wire formats parse into :class:`SimRequest`; :func:`plan` turns it into a :class:`Plan`
(the content chunks and why the output ended), which each wire module then renders as JSON
or SSE. Keeping generation here makes the two formats agree chunk for chunk.

Token accounting (documented in the shared brief; limit tests rely on it):

* ``input_tokens = ceil(characters of message and system text / 4) + 3 per message``
  (Anthropic's top-level ``system`` is text but not a message);
* ``output_tokens`` = content chunks emitted: one word each for text, one fragment each
  for tool-call arguments or JSON-mode text.

Text is words from a small vocabulary, chosen by a generator seeded with a hash of the
prompt, the model and the request's ``seed``: the same request always gets the same answer.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import orjson

__all__ = ["Finish", "Plan", "SimRequest", "ToolSpec", "plan", "split_even", "text_of"]

Finish: TypeAlias = Literal["stop", "length", "stop_sequence", "tool", "content_filter", "refusal"]

_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
    "zulu amber basil cedar dune ember fern grove harbor island jade kelp lagoon meadow "
    "nectar orchid pebble quartz river saffron thistle umber valley willow yarrow zephyr "
    "acorn birch clover dahlia elm fjord glacier heather iris juniper"
)
_VOCAB: tuple[str, ...] = tuple(_WORDS.split())


@dataclass(slots=True, frozen=True)
class ToolSpec:
    """The tool the simulator will call: its name and JSON schema of arguments."""

    name: str
    schema: Mapping[str, Any]


@dataclass(slots=True)
class SimRequest:
    """A chat request as the simulator understands it, whichever wire format it came in."""

    model: str
    prompt: str
    chars: int
    n_messages: int
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    tool: ToolSpec | None = None
    json_schema: Mapping[str, Any] | None = None
    json_mode: bool = False
    seed: int | None = None

    @property
    def input_tokens(self) -> int:
        """Input tokens by the simulator's accounting rule."""
        return math.ceil(self.chars / 4) + 3 * self.n_messages


@dataclass(slots=True)
class Plan:
    """The output of one response.

    Attributes:
        pieces: Content chunks (text words, JSON fragments, or tool-argument fragments).
        finish: Why the output ended.
        stop_sequence: The stop sequence that ended it, if any.
        tool: The tool called (then ``pieces`` are its argument fragments).
        tool_id: Id of the tool call.
        input_tokens: Input tokens charged.
        more_calls: Further tool calls made in parallel with ``tool``, as
            ``(id, name, arguments JSON)`` (scripted turns only).
    """

    pieces: list[str]
    finish: Finish
    input_tokens: int
    stop_sequence: str | None = None
    tool: ToolSpec | None = None
    tool_id: str = ""
    more_calls: tuple[tuple[str, str, str], ...] = ()

    @property
    def output_tokens(self) -> int:
        """Content chunks emitted (a further parallel tool call is one chunk)."""
        return len(self.pieces) + len(self.more_calls)

    @property
    def text(self) -> str:
        """All pieces joined."""
        return "".join(self.pieces)


def text_of(content: object) -> str:
    """The text of a message's content: a string, or the text of its parts/blocks.

    Tool results nested in Anthropic ``tool_result`` blocks count as text too.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        out: list[str] = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Mapping):
                t = part.get("text")
                if isinstance(t, str):
                    out.append(t)
                elif part.get("type") == "tool_result":
                    out.append(text_of(part.get("content")))
        return "".join(out)
    return ""


class _Rng:
    """A tiny 64-bit LCG: a few times cheaper than ``random.Random`` per request."""

    __slots__ = ("s",)

    def __init__(self, seed: int) -> None:
        self.s = seed & 0xFFFFFFFFFFFFFFFF

    def next(self, n: int) -> int:
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return (self.s >> 33) % n


def _seed(req: SimRequest, base: int) -> int:
    h = zlib.crc32(req.prompt.encode("utf-8", "surrogatepass"))
    h = zlib.crc32(req.model.encode(), h)
    return (h << 20) ^ ((req.seed or 0) * 0x9E3779B1) ^ base


def split_even(s: str, k: int) -> list[str]:
    """``s`` cut into ``k`` pieces of near-equal length (fewer when ``s`` is shorter)."""
    k = max(1, min(k, len(s)))
    size, extra = divmod(len(s), k)
    out, i = [], 0
    for j in range(k):
        n = size + (1 if j < extra else 0)
        out.append(s[i : i + n])
        i += n
    return out


_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _value(schema: object, rng: _Rng, depth: int = 0, defs: Mapping[str, Any] | None = None) -> Any:
    """A deterministic value that satisfies the simple parts of a JSON schema.

    Local ``$ref`` (``#/$defs/...``), ``anyOf``/``oneOf`` (the first non-null variant)
    and a few string formats are followed, so pydantic models' schemas get valid values.
    """
    if not isinstance(schema, Mapping):
        return _VOCAB[rng.next(len(_VOCAB))]
    if defs is None:
        found = schema.get("$defs")
        defs = found if isinstance(found, Mapping) else {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and depth <= 4:
        return _value(defs.get(ref[8:]), rng, depth + 1, defs)
    for combo in ("anyOf", "oneOf"):
        variants = schema.get(combo)
        if isinstance(variants, list) and variants:
            pick = next(
                (v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")),
                variants[0],
            )
            return _value(pick, rng, depth, defs)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t == "object" or (t is None and "properties" in schema):
        props = schema.get("properties") or {}
        if depth > 4 or not isinstance(props, Mapping):
            return {}
        return {str(k): _value(v, rng, depth + 1, defs) for k, v in props.items()}
    if t == "array":
        return [] if depth > 4 else [_value(schema.get("items"), rng, depth + 1, defs)]
    if t == "integer":
        return rng.next(100)
    if t == "number":
        return rng.next(10000) / 100
    if t == "boolean":
        return bool(rng.next(2))
    if t == "null":
        return None
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    return _VOCAB[rng.next(len(_VOCAB))]


# Benchmarks send the same prompt thousands of times: cache the generated pieces by generator
# state and length. Bounded by clearing, as entries are cheap to rebuild.
_WORDS_CACHE: dict[tuple[int, int], list[str]] = {}
_WORDS_CACHE_MAX = 4096


def _words(rng: _Rng, n: int) -> list[str]:
    """``n`` words as content pieces (a space before all but the first); do not mutate."""
    key = (rng.s, n)
    pieces = _WORDS_CACHE.get(key)
    if pieces is None:
        vocab, k = _VOCAB, len(_VOCAB)
        pieces = [vocab[rng.next(k)]]
        pieces += [" " + vocab[rng.next(k)] for _ in range(n - 1)]
        if len(_WORDS_CACHE) >= _WORDS_CACHE_MAX:
            _WORDS_CACHE.clear()
        _WORDS_CACHE[key] = pieces
    return pieces


def plan(req: SimRequest, *, output_tokens: int, seed: int, call_id: str) -> Plan:
    """Decide the output for ``req``.

    Args:
        req: The parsed request.
        output_tokens: Content chunks of a full answer (before ``max_tokens``).
        seed: The simulator's seed.
        call_id: Id to give a tool call.
    """
    rng = _Rng(_seed(req, seed))
    n = max(1, output_tokens)
    cap = n if req.max_tokens is None else min(n, req.max_tokens)
    if req.tool is not None:
        args = orjson.dumps(_value(req.tool.schema, rng)).decode()
        pieces = split_even(args, n)
        finish: Finish = "tool" if cap >= len(pieces) else "length"
        return Plan(pieces[:cap], finish, req.input_tokens, tool=req.tool, tool_id=call_id)
    if req.json_mode:
        if req.json_schema is not None:
            obj = _value(req.json_schema, rng)
        else:
            obj = {"answer": " ".join(_VOCAB[rng.next(len(_VOCAB))] for _ in range(n))}
        pieces = split_even(orjson.dumps(obj).decode(), n)
        return Plan(pieces[:cap], "stop" if cap >= len(pieces) else "length", req.input_tokens)
    pieces = _words(rng, n)[:cap]
    if req.stop:
        cut = _stop_cut(pieces, req.stop)
        if cut is not None:
            kept, seq = cut
            return Plan(kept, "stop_sequence", req.input_tokens, stop_sequence=seq)
    return Plan(pieces, "stop" if cap >= n else "length", req.input_tokens)


def _stop_cut(pieces: list[str], stops: tuple[str, ...]) -> tuple[list[str], str] | None:
    """Pieces truncated before the earliest stop sequence, and that sequence; or ``None``."""
    text = "".join(pieces)
    best: tuple[int, str] | None = None
    for s in stops:
        if not s:
            continue
        p = text.find(s)
        if p >= 0 and (best is None or p < best[0]):
            best = (p, s)
    if best is None:
        return None
    left, kept = best[0], []
    for piece in pieces:
        if left <= 0:
            break
        kept.append(piece[:left])
        left -= len(piece)
    return kept, best[1]
