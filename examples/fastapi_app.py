"""FastAPI recipe: one asyncllm client per app, a JSON endpoint and an SSE endpoint.

- One :class:`asyncllm.Client` is opened by the app's lifespan and shared by every
  request (one connection pool, one set of rate limiters, budgets and breakers).
- ``POST /chat`` answers JSON; ``POST /chat/stream`` streams Server-Sent Events:
  ``event: token`` per text delta, then ``event: done`` (usage, finish reason).
- Errors before the first token become HTTP statuses (``ERROR_STATUS``): budget refused
  402, rate limited 429 (with ``Retry-After``), all providers failed 502, deadline 504,
  bad request 400/422. After the first token the status (200) is already sent: the stream
  ends with ``event: error`` instead.
- A client that disconnects mid-stream cancels its upstream request at once: the SSE
  response watches for the disconnect in a task group next to the stream.

Run it on the embedded simulator (no API key needed)::

    python examples/fastapi_app.py            # serves http://127.0.0.1:8000
    curl -N -X POST localhost:8000/chat/stream -H 'content-type: application/json' \\
         -d '{"prompt": "hi"}'

Set ``ASYNCLLM_PROVIDERS=openai:gpt-4o-mini,anthropic:claude-3-5-haiku-latest`` to use
real providers instead.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

import asyncllm
from asyncllm import Client
from asyncllm.providers import OpenAICompatibleProvider
from asyncllm.testing import Simulator


class ChatIn(BaseModel):
    """A chat request from the browser."""

    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)


def error_status(exc: Exception) -> tuple[int, dict[str, str]]:
    """The HTTP status (and headers) that report ``exc`` to the caller."""
    if isinstance(exc, asyncllm.BudgetExceeded):
        return 402, {}
    if isinstance(exc, asyncllm.RateLimited):
        return 429, _retry_after(exc.retry_after)
    if isinstance(exc, asyncllm.AllProvidersFailed):
        if all(isinstance(e, asyncllm.RateLimited) for e in exc.exceptions):
            waits = [e.retry_after for e in exc.exceptions if e.retry_after is not None]
            return 429, _retry_after(min(waits) if waits else None)
        if all(isinstance(e, asyncllm.BudgetExceeded) for e in exc.exceptions):
            return 402, {}
        return 502, {}
    if isinstance(exc, asyncllm.DeadlineExceeded):
        return 504, {}
    if isinstance(exc, asyncllm.InvalidRequestError):
        return 422, {}
    if isinstance(exc, asyncllm.BadRequest):
        return 400, {}
    if isinstance(exc, asyncllm.CircuitOpen):
        return 503, {}
    return 500, {}


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {"retry-after": str(max(1, round(seconds)))} if seconds is not None else {}


def error_body(exc: Exception) -> dict[str, str]:
    """What the caller sees of an error: its type and message (never a key: asyncllm's
    messages are redacted)."""
    return {"error": type(exc).__name__, "message": str(exc)}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class ChatStream(Response):
    """An SSE response that owns its upstream stream for exactly as long as it runs.

    Everything happens in the request's task: the stream is opened before the status is
    sent (so early errors become statuses), and a child task watching for
    ``http.disconnect`` cancels the whole response, upstream request included, when the
    browser goes away.
    """

    media_type = "text/event-stream"

    def __init__(self, client: Client, body: ChatIn) -> None:
        super().__init__(media_type=self.media_type)
        self.client = client
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch_disconnect)
            await self._run(send)
            tg.cancel_scope.cancel()

    async def _run(self, send: Send) -> None:
        started = False
        try:
            async with self.client.stream(
                self.body.prompt, max_tokens=self.body.max_tokens
            ) as stream:
                async for chunk in stream:
                    if not started:
                        started = True
                        await self._start(send, 200, {"cache-control": "no-store"})
                    if chunk.text:
                        await self._body(send, _sse("token", {"text": chunk.text}))
                if not started:  # an empty answer
                    started = True
                    await self._start(send, 200, {"cache-control": "no-store"})
                r = stream.response
                done = {
                    "finish_reason": r.finish_reason if r else None,
                    "provider": r.provider if r else None,
                    # None when the server reported no usage (it is then booked at its
                    # worst case and ``r.usage_estimated`` is set).
                    "output_tokens": r.usage.output_tokens if r and r.usage else None,
                }
                await self._body(send, _sse("done", done), more=False)
        except Exception as exc:
            if not started:
                status, headers = error_status(exc)
                payload = json.dumps(error_body(exc)).encode()
                await self._start(send, status, {"content-type": "application/json", **headers})
                await self._body(send, payload, more=False)
            else:
                await self._body(send, _sse("error", error_body(exc)), more=False)

    async def _start(self, send: Send, status: int, headers: dict[str, str]) -> None:
        h = {"content-type": self.media_type, **headers}
        raw = [(k.encode(), v.encode()) for k, v in h.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})

    @staticmethod
    async def _body(send: Send, data: bytes, *, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})


def default_client() -> contextlib.AbstractAsyncContextManager[Client]:
    """Real providers from ``ASYNCLLM_PROVIDERS``, else an embedded simulator."""

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Client]:
        specs = os.environ.get("ASYNCLLM_PROVIDERS")
        if specs:
            async with Client(specs.split(","), timeout=60) as client:
                yield client
            return
        async with Simulator(output_tokens=24, token_delay=0.02) as sim:
            provider = OpenAICompatibleProvider(
                name="sim",
                base_url=sim.openai_base_url,
                model="sim",
                api_key="not-a-key",
                stream_usage=True,  # the simulator, like vLLM or Ollama, reports stream usage
            )
            async with Client(provider, timeout=60) as client:
                yield client

    return make()


def create_app(
    client: Callable[[], contextlib.AbstractAsyncContextManager[Client]] = default_client,
) -> FastAPI:
    """The app. ``client`` makes the one client the lifespan holds (tests pass their own)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client() as c:
            app.state.llm = c
            yield

    app = FastAPI(lifespan=lifespan)

    @app.exception_handler(asyncllm.AsyncLLMError)
    async def llm_error(request: Request, exc: asyncllm.AsyncLLMError) -> JSONResponse:
        status, headers = error_status(exc)
        return JSONResponse(error_body(exc), status_code=status, headers=headers)

    @app.post("/chat")
    async def chat(body: ChatIn, request: Request) -> dict[str, Any]:
        llm: Client = request.app.state.llm
        r = await llm.complete(body.prompt, max_tokens=body.max_tokens)
        return {
            "text": r.text,
            "provider": r.provider,
            "finish_reason": r.finish_reason,
            "usage": (
                None
                if r.usage is None
                else {"input": r.usage.input_tokens, "output": r.usage.output_tokens}
            ),
            "cost_usd": r.cost_usd,
        }

    @app.post("/chat/stream")
    async def chat_stream(body: ChatIn, request: Request) -> Response:
        return ChatStream(request.app.state.llm, body)

    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
