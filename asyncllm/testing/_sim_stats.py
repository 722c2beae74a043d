"""What a :class:`~asyncllm.testing.Simulator` observed: live counters and recent requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["RecordedRequest", "SimulatorStats"]


@dataclass(slots=True, frozen=True)
class RecordedRequest:
    """A request as the simulator received it (kept in ``sim.requests``).

    Header names are lower-case. Headers are left out of the repr: they carry API keys.

    Attributes:
        method: HTTP method.
        path: URL path without the query.
        headers: Header name to value.
        body: The raw body.
    """

    method: str
    path: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: when the body is not JSON.
        """
        return orjson.loads(self.body)


@dataclass(slots=True)
class SimulatorStats:
    """What the simulator has seen. All counts are since start (or the last ``reset()``).

    Attributes:
        received: Requests parsed (any path, any outcome).
        completed: Successful (2xx) responses sent to the end.
        disconnected: Responses the *client* abandoned: the connection closed while the
            request was being served (during latency, a stall, or mid-stream). Detected by
            the server's ``connection_lost`` callback, so it is counted as soon as the
            client's FIN or RST arrives. Server-side aborts (``drop_mid_stream``) are not
            counted here but in ``dropped``.
        rate_limited: 429 responses sent (injected faults and the simulator's own limits).
        errors: Error responses and mid-stream error events sent (4xx/5xx, 429s included).
        faults: Injected faults consumed.
        scripted: Scripted turns consumed (``Simulator.script``).
        dropped: Connections the simulator aborted on purpose (``drop_mid_stream``).
        in_flight: Requests being served right now.
        connections: Client connections open right now.
        connections_total: Client connections accepted.
        by_path: Requests received per URL path.
    """

    received: int = 0
    completed: int = 0
    disconnected: int = 0
    rate_limited: int = 0
    errors: int = 0
    faults: int = 0
    scripted: int = 0
    dropped: int = 0
    in_flight: int = 0
    connections: int = 0
    connections_total: int = 0
    by_path: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A snapshot as a plain dict (``by_path`` copied)."""
        return {
            "received": self.received,
            "completed": self.completed,
            "disconnected": self.disconnected,
            "rate_limited": self.rate_limited,
            "errors": self.errors,
            "faults": self.faults,
            "scripted": self.scripted,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
            "connections": self.connections,
            "connections_total": self.connections_total,
            "by_path": dict(self.by_path),
        }

    def reset(self) -> None:
        """Zero the cumulative counters (``in_flight`` and ``connections`` are kept)."""
        self.received = self.completed = self.disconnected = 0
        self.rate_limited = self.errors = self.faults = self.dropped = self.scripted = 0
        self.connections_total = self.connections
        self.by_path.clear()
