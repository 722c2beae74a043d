"""An LLM provider simulator: a real HTTP server on loopback speaking OpenAI and Anthropic.

``POST /v1/chat/completions`` answers in the OpenAI chat completions format and
``POST /v1/messages`` in the Anthropic messages format, as JSON or as SSE streams, with
deterministic text, usage, stop reasons, tool calls, JSON mode, scripted turns
(:meth:`Simulator.script`), latency, per-chunk delays,
rate limits with the vendors' headers, and injectable faults. Drivers, SDKs and tests talk
to it exactly as they would to the real APIs; only the base URL differs.

Server stack: a hand-written HTTP/1.1 ``asyncio.Protocol`` (see ``_sim_http``), chosen over
``aiohttp.web`` for lower per-request cost under the fast-path benchmark, byte-exact control
of abrupt drops and stalls, and immediate ``connection_lost`` notice when a client leaves.

Tasks: each request is served in a task the simulator tracks and, on close, cancels and
awaits. Not an anyio task group held across ``__aenter__``/``__aexit__`` on purpose: that
would tie the simulator to one task, and pytest-asyncio runs an async fixture's setup and
teardown in different tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import anyio

from ._latency import LatencyLike, to_latency
from ._sim_faults import Fault
from ._sim_handler import ANTHROPIC_PATH, OPENAI_PATH, Handler, SimConfig
from ._sim_http import Connection, HttpRequest
from ._sim_limits import RateLimits
from ._sim_script import Turn
from ._sim_stats import RecordedRequest, SimulatorStats

__all__ = ["Simulator"]


class Simulator:
    """A local OpenAI + Anthropic compatible server for tests and benchmarks.

    Use it as an async context manager (or call :meth:`start` and :meth:`aclose`)::

        async with Simulator(output_tokens=8) as sim:
            client = openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="test")
            sim.inject(Fault.rate_limit(retry_after=1.5))
            ...
            await sim.wait_for(lambda st: st.disconnected >= 1, timeout=2)

    Args:
        host: Interface to listen on (loopback by default).
        port: TCP port; 0 picks a free one.
        latency: Seconds before the response headers, or a distribution
            (:class:`~asyncllm.testing.Constant`, :class:`~asyncllm.testing.Mixture`,
            :func:`~asyncllm.testing.heavy_tail`), sampled with an RNG seeded by ``seed``.
        token_delay: Seconds between streamed content chunks (a non-streamed response
            waits ``(chunks - 1) * token_delay`` extra).
        output_tokens: Content chunks in a full answer; ``max_tokens`` caps it (finish
            ``length`` / ``max_tokens``).
        rpm: Requests allowed per ``period`` (``None``: unlimited).
        tpm: Tokens (input + planned output) allowed per ``period`` (``None``: unlimited).
        period: Seconds in a limit period (60 like the real APIs; scale it down in tests).
        seed: Seed of the text generator and the latency sampler.
        require_api_key: When set, any other key gets a 401.
        context_window: When set, prompts of more input tokens get a context-window error.
        record: How many of the latest requests to keep in :attr:`requests` (0: none).

    Attributes:
        stats: Live counters (:class:`~asyncllm.testing.SimulatorStats`).
        requests: The latest requests received (:class:`~asyncllm.testing.RecordedRequest`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: LatencyLike = 0.0,
        token_delay: float = 0.0,
        output_tokens: int = 16,
        rpm: int | None = None,
        tpm: int | None = None,
        period: float = 60.0,
        seed: int = 0,
        require_api_key: str | None = None,
        context_window: int | None = None,
        record: int = 256,
    ) -> None:
        if token_delay < 0:
            raise ValueError("token_delay must be >= 0")
        if output_tokens < 1:
            raise ValueError("output_tokens must be >= 1")
        if context_window is not None and context_window < 1:
            raise ValueError("context_window must be >= 1")
        if record < 0:
            raise ValueError("record must be >= 0")
        self._host = host
        self._port = port
        self.stats = SimulatorStats()
        config = SimConfig(
            latency=to_latency(latency),
            token_delay=float(token_delay),
            output_tokens=output_tokens,
            seed=seed,
            require_api_key=require_api_key,
            context_window=context_window,
            record=record,
        )
        # Buckets start full, so the clock origin only matters after the first request.
        self._handler = Handler(config, RateLimits(rpm, tpm, period, 0.0), self.stats)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[Connection] = set()
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start listening (idempotent). Returns the simulator."""
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._closing = False
            self._server = await loop.create_server(
                lambda: Connection(self),
                self._host,
                self._port,
                backlog=2048,
                reuse_address=True,
            )
            self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop listening, reset open connections, cancel and await in-flight requests."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            server.close()
            for conn in list(self._conns):
                conn.abort()
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled (the CLI uses this)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.aclose()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (the real one once started with ``port=0``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for OpenAI clients: ``base_url + "/v1"``."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for Anthropic clients (the SDK appends ``/v1/messages``)."""
        return self.base_url

    @property
    def openai_url(self) -> str:
        """Full URL of the chat completions endpoint."""
        return self.base_url + OPENAI_PATH

    @property
    def anthropic_url(self) -> str:
        """Full URL of the messages endpoint."""
        return self.base_url + ANTHROPIC_PATH

    # -- faults and observation -----------------------------------------------------------------

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Make the next ``times`` requests (after faults queued earlier) suffer ``fault``."""
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        self._handler.faults.push(fault, times)

    @property
    def requests(self) -> Sequence[RecordedRequest]:
        """The latest requests received, oldest first (at most ``record`` of them)."""
        return self._handler.requests

    @property
    def last_request(self) -> RecordedRequest:
        """The latest request received.

        Raises:
            LookupError: when none was recorded yet.
        """
        if not self._handler.requests:
            raise LookupError("the simulator has not recorded a request yet")
        return self._handler.requests[-1]

    def script(self, *turns: Turn) -> None:
        """Queue exact answers for the next requests, one :class:`~asyncllm.testing.Turn`
        each (after turns queued earlier): text, JSON, or tool calls.

        Without a script the simulator makes up answers, calling the first tool offered
        unless the conversation ends with tool results (then it answers in text).
        """
        self._handler.script.push(*turns)

    @property
    def pending_turns(self) -> int:
        """Scripted turns still queued."""
        return len(self._handler.script)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._handler.faults.clear()

    @property
    def pending_faults(self) -> int:
        """Fault uses still queued."""
        return len(self._handler.faults)

    async def wait_for(
        self,
        predicate: Callable[[SimulatorStats], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented API: a poll helper
        *,
        interval: float = 0.005,
    ) -> SimulatorStats:
        """Poll until ``predicate(stats)`` holds; returns the stats.

        Raises:
            TimeoutError: when it still does not hold after ``timeout`` seconds.
        """
        try:
            with anyio.fail_after(timeout):
                # Polling on purpose: stats change in many places, and tests read them
                # rarely; a condition variable on every counter would tax the hot path.
                while not predicate(self.stats):  # noqa: ASYNC110
                    await anyio.sleep(interval)
        except TimeoutError:
            raise TimeoutError(
                f"simulator stats did not satisfy the predicate within {timeout}s: "
                f"{self.stats.as_dict()}"
            ) from None
        return self.stats

    def statistics(self) -> dict[str, Any]:
        """Counters, open connections and queued faults as a dict."""
        d = self.stats.as_dict()
        d["pending_faults"] = self.pending_faults
        return d

    def __repr__(self) -> str:
        state = f"http://{self._host}:{self._port}" if self._server else "stopped"
        return f"<Simulator {state} received={self.stats.received}>"

    # -- ServerHooks (called by connections) --------------------------------------------------

    def handle(self, conn: Connection, req: HttpRequest) -> Awaitable[None]:
        """Serve one request (used by :class:`Connection`)."""
        return self._handler.handle(conn, req)

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        """Run a request task the simulator owns until it ends or the simulator closes."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def connection_opened(self, conn: Connection) -> None:
        """Count a new connection."""
        self._conns.add(conn)
        self.stats.connections += 1
        self.stats.connections_total += 1

    def connection_closed(self, conn: Connection, mid_response: bool) -> None:
        """Count a closed connection; a client leaving mid-response is ``disconnected``."""
        self._conns.discard(conn)
        self.stats.connections -= 1
        if mid_response and not self._closing:
            self.stats.disconnected += 1
