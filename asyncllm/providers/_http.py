"""Pooled HTTP resources owned by one ``asyncllm.Client`` and shared by its drivers.

Two pools, each created on first use so that ``import asyncllm`` stays cheap:

- an ``aiohttp.ClientSession`` for the native drivers (the fast path);
- an ``httpx2.AsyncClient`` for the official SDK backends, shared by every SDK client of
  this asyncllm client.

Both are sized for fan-out (``max_connections``) and closed by :meth:`aclose`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import aiohttp
    import httpx2

__all__ = ["HttpResources"]


class HttpResources:
    """Lazily created, pooled HTTP clients.

    Args:
        max_connections: Upper bound on open connections per pool.
        max_keepalive: Idle connections kept for reuse (httpx2 pool).
        connect_timeout: Seconds to establish a connection.
    """

    def __init__(
        self,
        *,
        max_connections: int = 512,
        max_keepalive: int = 256,
        connect_timeout: float = 10.0,
    ) -> None:
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self.connect_timeout = connect_timeout
        self._aiohttp: aiohttp.ClientSession | None = None
        self._httpx: httpx2.AsyncClient | None = None
        self._closed = False

    def aiohttp_session(self) -> aiohttp.ClientSession:
        """The shared aiohttp session (created on first call, inside a running loop)."""
        if self._aiohttp is None:
            self._check_open()
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                ttl_dns_cache=300,
                enable_cleanup_closed=False,
            )
            self._aiohttp = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                raise_for_status=False,
            )
        return self._aiohttp

    def httpx_client(self) -> httpx2.AsyncClient:
        """The shared httpx2 client for the official SDKs (created on first call)."""
        if self._httpx is None:
            self._check_open()
            import httpx2

            self._httpx = httpx2.AsyncClient(
                limits=httpx2.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_keepalive,
                ),
                timeout=httpx2.Timeout(None, connect=self.connect_timeout),
            )
        return self._httpx

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("HttpResources is closed")

    async def aclose(self) -> None:
        """Close both pools. Shielded: closing finishes even if the caller is cancelled."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self._aiohttp is not None:
                session, self._aiohttp = self._aiohttp, None
                await session.close()
            if self._httpx is not None:
                client, self._httpx = self._httpx, None
                await client.aclose()

    def statistics(self) -> dict[str, Any]:
        """Which pools exist."""
        return {"aiohttp": self._aiohttp is not None, "httpx2": self._httpx is not None}
