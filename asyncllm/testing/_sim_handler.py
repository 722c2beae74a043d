"""How the simulator serves one request: route, validate, fault, limit, wait, respond.

The order, per request: count it; parse the JSON; check the API key; parse the body in the
path's wire format (400 on nonsense); take the next injected fault; answer error faults at
once (they consume no rate-limit capacity and no latency); plan the output; admit it against
the rate limits (429 if refused); wait (a pre-header stall, then the sampled latency); then
send JSON (after ``latency + (chunks - 1) * token_delay``) or stream SSE with ``token_delay``
between content chunks, acting out streaming faults after ``after`` chunks.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from itertools import count

import orjson

from ._latency import Latency
from ._sim_anthropic import AnthropicWire
from ._sim_faults import Fault, FaultQueue
from ._sim_http import Connection, HttpRequest
from ._sim_limits import RateLimits
from ._sim_openai import OpenAIWire
from ._sim_quality import ANSWER_FAULTS, reshape
from ._sim_script import ScriptQueue, plan_turn
from ._sim_stats import RecordedRequest, SimulatorStats
from ._sim_text import Plan, SimRequest, plan
from ._sim_wire import ErrorKind, Wire, WireError

__all__ = ["Handler", "SimConfig"]

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

_MESSAGES: dict[str, dict[ErrorKind, str]] = {
    "openai": {
        "server": "The server had an error while processing your request. Sorry about that!",
        "unavailable": "The server is temporarily unavailable. Please try again later.",
        "overloaded": "The engine is currently overloaded, please try again later.",
        "authentication": "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    },
    "anthropic": {
        "server": "Internal server error",
        "unavailable": "Service unavailable",
        "overloaded": "Overloaded",
        "authentication": "invalid x-api-key",
    },
}

_FAULT_KINDS: dict[str, ErrorKind] = {
    "rate_limit": "rate_limit",
    "server_error": "server",
    "unavailable": "unavailable",
    "overloaded": "overloaded",
    "bad_request": "invalid_request",
    "context_window": "context_window",
    "auth": "authentication",
}

_MODELS = orjson.dumps(
    {
        "object": "list",
        "data": [{"id": "simulator", "object": "model", "created": 0, "owned_by": "asyncllm"}],
    }
)


@dataclass(slots=True)
class SimConfig:
    """Behaviour knobs of a simulator (see :class:`~asyncllm.testing.Simulator`)."""

    latency: Latency
    token_delay: float
    output_tokens: int
    seed: int
    require_api_key: str | None
    context_window: int | None
    record: int


@dataclass(slots=True)
class _Answer:
    """A planned request, admitted and waited for: what sending its answer needs."""

    conn: Connection
    wire: Wire
    sreq: SimRequest
    plan: Plan
    fault: Fault | None
    resp_id: str
    created: int
    headers: list[tuple[str, str]]  # request id and rate-limit headers
    rid: str


def _api_key(req: HttpRequest) -> bytes:
    key = req.headers.get(b"x-api-key")
    if key is not None:
        return key
    auth = req.headers.get(b"authorization", b"")
    return auth[7:] if auth[:7].lower() == b"bearer " else b""


class Handler:
    """Serves requests for one simulator; owns its faults, limits and counters."""

    def __init__(self, config: SimConfig, limits: RateLimits, stats: SimulatorStats) -> None:
        self.config = config
        self.limits = limits
        self.stats = stats
        self.faults = FaultQueue()
        self.script = ScriptQueue()
        self._rng = random.Random(config.seed)
        self._ids = count(1)
        self._routes: dict[str, Wire] = {OPENAI_PATH: OpenAIWire(), ANTHROPIC_PATH: AnthropicWire()}
        self.requests: deque[RecordedRequest] = deque(maxlen=config.record)

    async def handle(self, conn: Connection, req: HttpRequest) -> None:
        """Serve ``req`` on ``conn`` (counts it in the stats)."""
        st = self.stats
        st.received += 1
        st.by_path[req.path] = st.by_path.get(req.path, 0) + 1
        st.in_flight += 1
        if self.config.record:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in req.headers.items()}
            self.requests.append(RecordedRequest(req.method, req.path, headers, req.body))
        try:
            await self._handle(conn, req)
        finally:
            st.in_flight -= 1

    def _error(
        self,
        conn: Connection,
        wire: Wire,
        status: int,
        kind: ErrorKind,
        message: str,
        rid: str,
        headers: list[tuple[str, str]] | None = None,
        limit: str = "",
        param: str | None = None,
    ) -> None:
        self.stats.errors += 1
        if status == 429:
            self.stats.rate_limited += 1
        h = [("content-type", "application/json"), (wire.request_id_header, rid)]
        if headers:
            h += headers
        conn.send(
            status, h, wire.error_body(kind, message, request_id=rid, limit=limit, param=param)
        )

    async def _handle(self, conn: Connection, req: HttpRequest) -> None:
        n = next(self._ids)
        rid = f"req_sim{n:012x}"
        wire = self._routes.get(req.path)
        if wire is None:
            if req.path in ("/v1/models", "/models") and req.method == "GET":
                conn.send(200, [("content-type", "application/json")], _MODELS)
                self.stats.completed += 1
                return
            openai = self._routes[OPENAI_PATH]
            msg = f"Unknown request URL: {req.method} {req.path}."
            return self._error(conn, openai, 404, "not_found", msg, rid)
        if req.method != "POST":
            msg = f"Method {req.method} not allowed on {req.path}."
            return self._error(conn, wire, 405, "invalid_request", msg, rid)
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            msg = "We could not parse the JSON body of your request."
            return self._error(conn, wire, 400, "invalid_request", msg, rid)
        want = self.config.require_api_key
        if want is not None and not hmac.compare_digest(_api_key(req), want.encode()):
            msg = _MESSAGES[wire.name]["authentication"]
            return self._error(conn, wire, 401, "authentication", msg, rid)
        try:
            sreq = wire.parse(body)
        except WireError as e:
            return self._error(conn, wire, 400, "invalid_request", e.message, rid, param=e.param)
        fault = self.faults.pop()
        if fault is not None:
            self.stats.faults += 1
            if fault.is_error_response:
                return self._fault_response(conn, wire, fault, sreq, rid)
        limit = self.config.context_window
        if limit is not None and sreq.input_tokens > limit:
            return self._context_error(conn, wire, sreq, limit, rid)
        call_id = f"call_sim{n:012x}" if wire.name == "openai" else f"toolu_sim{n:012x}"
        # Peeked, and taken only once the request is admitted: a request refused by the
        # rate limits does not use up the turn meant for the answer (nor does an injected
        # error response, handled above).
        turn = self.script.peek()
        if turn is not None:
            out = plan_turn(turn, sreq, output_tokens=self.config.output_tokens, call_id=call_id)
        else:
            out = plan(
                sreq,
                output_tokens=self.config.output_tokens,
                seed=self.config.seed,
                call_id=call_id,
            )
        if fault is not None and fault.kind == "content_filter":
            out.pieces = out.pieces[: fault.after or 0]
            out.finish = "content_filter"
            out.stop_sequence = None
        if fault is not None and fault.kind in ANSWER_FAULTS:
            out = reshape(fault.kind, out, sreq, fault.after, call_id)
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait, which = self.limits.admit(sreq.input_tokens + out.output_tokens, now)
        headers = [(wire.request_id_header, rid)]
        headers += wire.limit_headers(self.limits.snapshot(now), time.time())
        if wait:
            msg = (
                f"Rate limit reached for {which} per {self.limits_period()} "
                f"(simulator). Please try again in {wait:.3f}s."
            )
            return self._error(
                conn, wire, 429, "rate_limit", msg, rid, headers[1:] + _retry_headers(wait), which
            )
        if turn is not None:
            self.script.pop()
            self.stats.scripted += 1
        if fault is not None and fault.kind == "stall" and fault.after is None:
            await asyncio.sleep(fault.seconds)
        delay = self._rng_latency()
        if delay > 0:
            await asyncio.sleep(delay)
        resp_id = f"chatcmpl-sim{n:012x}" if wire.name == "openai" else f"msg_sim{n:012x}"
        a = _Answer(conn, wire, sreq, out, fault, resp_id, int(time.time()), headers, rid)
        await (self._stream(a) if sreq.stream else self._json(a))

    def limits_period(self) -> str:
        """The limit period, for messages (``60s``)."""
        return f"{self.limits.period:g}s"

    def _rng_latency(self) -> float:
        return self.config.latency.sample(self._rng)

    def _fault_response(
        self, conn: Connection, wire: Wire, fault: Fault, sreq: SimRequest, rid: str
    ) -> None:
        kind = _FAULT_KINDS[fault.kind]
        if kind == "context_window":
            return self._context_error(conn, wire, sreq, None, rid)
        extra: list[tuple[str, str]] = []
        if kind == "rate_limit":
            msg = f"Rate limit reached (injected fault). Please try again in {fault.seconds:g}s."
            extra = _retry_headers(fault.seconds)
        elif fault.message is not None:
            msg = fault.message
        else:
            msg = _MESSAGES[wire.name].get(kind, "Injected fault.")
        self._error(conn, wire, fault.status, kind, msg, rid, extra, "requests")

    def _context_error(
        self, conn: Connection, wire: Wire, sreq: SimRequest, limit: int | None, rid: str
    ) -> None:
        used = sreq.input_tokens
        limit = limit if limit is not None else max(1, used - 1)
        if wire.name == "openai":
            msg = (
                f"This model's maximum context length is {limit} tokens. However, your "
                f"messages resulted in {used} tokens. Please reduce the length of the messages."
            )
        else:
            msg = f"prompt is too long: {used} tokens > {limit} maximum"
        self._error(conn, wire, 400, "context_window", msg, rid)

    async def _json(self, a: _Answer) -> None:
        conn, wire, out, fault = a.conn, a.wire, a.plan, a.fault
        td = self.config.token_delay
        if td > 0 and out.output_tokens > 1:
            await asyncio.sleep(td * (out.output_tokens - 1))
        if fault is not None and fault.kind == "stall" and fault.after is not None:
            await asyncio.sleep(fault.seconds)  # "mid-stream" on a JSON call: before the body
        if fault is not None and fault.status >= 400:  # a mid-stream error, on a JSON call
            kind = _FAULT_KINDS[fault.kind]
            msg = _MESSAGES[wire.name].get(kind, "Injected fault.")
            extra = _retry_headers(fault.seconds) if kind == "rate_limit" else []
            return self._error(conn, wire, fault.status, kind, msg, a.rid, extra)
        body = wire.render_json(a.sreq, out, a.resp_id, a.created)
        h = [("content-type", "application/json"), *a.headers]
        if fault is not None and fault.kind == "drop":
            self.stats.dropped += 1
            return conn.send_partial(200, h, body)
        if fault is not None and fault.kind == "malformed":
            body = body[: len(body) // 2]
        conn.send(200, h, body)
        self.stats.completed += 1

    async def _stream(self, a: _Answer) -> None:
        conn, wire, out, fault = a.conn, a.wire, a.plan, a.fault
        parts = wire.render_stream(a.sreq, out, a.resp_id, a.created)
        content = parts.content
        at = -1
        if (
            fault is not None
            and fault.after is not None
            and fault.kind != "content_filter"
            and fault.kind not in ANSWER_FAULTS
        ):
            at = min(fault.after, len(content))
        td = self.config.token_delay
        h = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            *a.headers,
        ]
        conn.start_stream(200, h)
        pending = bytearray(parts.prologue)
        for i in range(len(content) + 1):
            if i == at:
                assert fault is not None
                conn.write_chunk(bytes(pending))
                pending.clear()
                if fault.kind == "drop":
                    self.stats.dropped += 1
                    conn.abort()
                    return
                if fault.kind == "malformed":
                    pending += wire.malformed(a.resp_id)
                elif fault.kind == "stall":
                    await conn.drain()
                    await asyncio.sleep(fault.seconds)
                else:  # a status fault mid-stream: an error event, then the stream ends
                    kind = _FAULT_KINDS[fault.kind]
                    msg = _MESSAGES[wire.name].get(kind, "Injected fault.")
                    self.stats.errors += 1
                    if kind == "rate_limit":
                        self.stats.rate_limited += 1
                    conn.end_stream(wire.stream_error(kind, msg, request_id=a.rid))
                    return
            if i == len(content):
                break
            if i > 0 and td > 0:
                conn.write_chunk(bytes(pending))
                pending.clear()
                await conn.drain()
                await asyncio.sleep(td)
            pending += content[i]
        conn.end_stream(bytes(pending + parts.epilogue))
        self.stats.completed += 1


def _retry_headers(seconds: float) -> list[tuple[str, str]]:
    """``retry-after`` in whole seconds (rounded up, as HTTP requires) and the exact ``-ms``."""
    return [
        ("retry-after", str(max(0, math.ceil(seconds)))),
        ("retry-after-ms", str(max(0, round(seconds * 1000)))),
    ]
