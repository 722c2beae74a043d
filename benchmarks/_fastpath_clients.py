"""The contestants of ``bench_fastpath.py``: one small class per way of calling an LLM API.

Each contestant sends the same chat request (one short user message, ``max_tokens`` set)
to the simulator and reads the answer the way that library intends: ``complete()`` one
non-streamed request, ``stream(n)`` one streamed request of ``n`` content chunks. Both
return the number of content chunks seen, so the harness can check that every contestant
did the same work.
"""

from __future__ import annotations

import json
import os
from typing import Any

import orjson

PROMPT = "Write a short note about benchmarks."
MODEL = "sim-model"
KEY = "sk-bench-not-a-real-key"
CONCURRENCY = 64


class Contestant:
    """One way of calling the API."""

    name = "base"
    endpoint = "openai"

    async def setup(self, base_url: str) -> None:
        """Create clients (``base_url`` is the simulator's root, without ``/v1``)."""

    async def close(self) -> None:
        """Release clients."""

    async def complete(self, max_tokens: int) -> int:
        """One non-streamed request; the number of content words received."""
        raise NotImplementedError

    async def stream(self, max_tokens: int) -> int:
        """One streamed request; the number of content chunks received."""
        raise NotImplementedError


def _oai_body(max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


class RawAiohttp(Contestant):
    """aiohttp POST + orjson, SSE read line by line: the floor a hand-written client pays."""

    name = "raw aiohttp+orjson"

    async def setup(self, base_url: str) -> None:
        import aiohttp

        self.url = base_url + "/v1/chat/completions"
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))

    async def close(self) -> None:
        await self.session.close()

    async def complete(self, max_tokens: int) -> int:
        data = orjson.dumps(_oai_body(max_tokens, False))
        async with self.session.post(self.url, data=data, headers=self.headers) as resp:
            obj = orjson.loads(await resp.read())
        return len(obj["choices"][0]["message"]["content"].split())

    async def stream(self, max_tokens: int) -> int:
        data = orjson.dumps(_oai_body(max_tokens, True))
        n = 0
        async with self.session.post(self.url, data=data, headers=self.headers) as resp:
            async for line in resp.content:
                if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                    choices = orjson.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        n += 1
        return n


class RawHttpx(Contestant):
    """httpx2 POST + stdlib json, SSE via ``aiter_lines``."""

    name = "raw httpx2+json"

    async def setup(self, base_url: str) -> None:
        import httpx2

        self.url = base_url + "/v1/chat/completions"
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        self.client = httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=512, max_keepalive_connections=256),
            timeout=None,
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def complete(self, max_tokens: int) -> int:
        content = json.dumps(_oai_body(max_tokens, False))
        resp = await self.client.post(self.url, content=content, headers=self.headers)
        return len(resp.json()["choices"][0]["message"]["content"].split())

    async def stream(self, max_tokens: int) -> int:
        content = json.dumps(_oai_body(max_tokens, True))
        n = 0
        async with self.client.stream(
            "POST", self.url, content=content, headers=self.headers
        ) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: ") and not line.startswith("data: [DONE]"):
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        n += 1
        return n


class OpenAISDK(Contestant):
    """The official ``openai.AsyncOpenAI`` (its own pool, ``max_retries=0``)."""

    name = "openai SDK"

    async def setup(self, base_url: str) -> None:
        import openai

        self.client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url + "/v1", max_retries=0)

    async def close(self) -> None:
        await self.client.close()

    async def complete(self, max_tokens: int) -> int:
        r = await self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens
        )
        return len((r.choices[0].message.content or "").split())

    async def stream(self, max_tokens: int) -> int:
        s = await self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        n = 0
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
        return n


class AnthropicSDK(Contestant):
    """The official ``anthropic.AsyncAnthropic`` (its own pool, ``max_retries=0``)."""

    name = "anthropic SDK"
    endpoint = "anthropic"

    async def setup(self, base_url: str) -> None:
        import anthropic

        self.client = anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0)

    async def close(self) -> None:
        await self.client.close()

    async def complete(self, max_tokens: int) -> int:
        r = await self.client.messages.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens
        )
        return len("".join(getattr(b, "text", "") for b in r.content).split())

    async def stream(self, max_tokens: int) -> int:
        s = await self.client.messages.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=max_tokens,
            stream=True,
        )
        n = 0
        async for ev in s:
            if ev.type == "content_block_delta" and getattr(ev.delta, "text", None):
                n += 1
        return n


class LiteLLM(Contestant):
    """``litellm.acompletion`` (OpenAI-compatible route to the simulator)."""

    name = "litellm acompletion"

    async def setup(self, base_url: str) -> None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before the import: no internet
        import litellm

        litellm.telemetry = False
        self.litellm = litellm
        self.kw = {"model": "openai/" + MODEL, "api_base": base_url + "/v1", "api_key": KEY}

    async def complete(self, max_tokens: int) -> int:
        r = await self.litellm.acompletion(
            messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens, **self.kw
        )
        return len((r.choices[0].message.content or "").split())

    async def stream(self, max_tokens: int) -> int:
        s = await self.litellm.acompletion(
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=max_tokens,
            stream=True,
            **self.kw,
        )
        n = 0
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
        return n


class LiteLLMRouter(LiteLLM):
    """``litellm.Router.acompletion`` with one deployment."""

    name = "litellm Router"

    async def setup(self, base_url: str) -> None:
        await super().setup(base_url)
        self.router = self.litellm.Router(
            model_list=[{"model_name": "sim", "litellm_params": dict(self.kw)}]
        )
        self.kw = {"model": "sim"}
        self.litellm = self.router  # same call shape: .acompletion(...)


class AsyncLLM(Contestant):
    """``asyncllm.Client`` over one driver, through its public ``complete``/``stream``."""

    def __init__(self, kind: str, backend: str) -> None:
        self.kind = kind
        self.backend = backend
        self.endpoint = "openai" if kind == "openai" else "anthropic"
        self.name = f"asyncllm {backend} ({kind})"

    async def setup(self, base_url: str) -> None:
        import asyncllm
        from asyncllm.providers import resolve

        url = base_url + "/v1" if self.kind == "openai" else base_url
        provider = resolve(f"{self.kind}:{MODEL}", api_key=KEY, base_url=url, backend=self.backend)
        self.client = asyncllm.Client(provider)
        await self.client.__aenter__()

    async def close(self) -> None:
        await self.client.aclose()

    async def complete(self, max_tokens: int) -> int:
        r = await self.client.complete(PROMPT, max_tokens=max_tokens)
        return len(r.text.split())

    async def stream(self, max_tokens: int) -> int:
        n = 0
        async with self.client.stream(PROMPT, max_tokens=max_tokens) as s:
            async for chunk in s:
                if chunk.text:
                    n += 1
        return n


class AsyncLLMDriver(AsyncLLM):
    """The native driver alone (no ``Client``): what the orchestrator adds is the gap."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind, "native")
        self.name = f"asyncllm driver only ({kind})"

    async def setup(self, base_url: str) -> None:
        from asyncllm._build import build_request
        from asyncllm.providers import HttpResources, resolve

        url = base_url + "/v1" if self.kind == "openai" else base_url
        self.http = HttpResources()
        self.provider = resolve(f"{self.kind}:{MODEL}", api_key=KEY, base_url=url)
        await self.provider.open(self.http)
        self.build = build_request

    async def close(self) -> None:
        await self.provider.aclose()
        await self.http.aclose()

    def _req(self, n: int) -> Any:
        # Built per call, as Client.complete builds one per call.
        return self.build(PROMPT, {"max_tokens": n})

    async def complete(self, max_tokens: int) -> int:
        r = await self.provider.complete(self._req(max_tokens))
        return len(r.text.split())

    async def stream(self, max_tokens: int) -> int:
        n = 0
        async with self.provider.stream(self._req(max_tokens)) as s:
            async for chunk in s:
                if chunk.text:
                    n += 1
        return n


class AsyncLLMDriverViaStream(AsyncLLMDriver):
    """The native driver's ``complete`` built from a consumed stream instead of the JSON
    endpoint: the measurement behind using the non-streaming endpoint for ``complete``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.name = f"asyncllm driver, complete via stream ({kind})"

    async def complete(self, max_tokens: int) -> int:
        from asyncllm.providers import BaseProvider

        provider: Any = self.provider
        r = await BaseProvider.complete(provider, self._req(max_tokens))
        return len(r.text.split())


def all_contestants(include_litellm: bool) -> list[Contestant]:
    """Every contestant, baseline first."""
    out: list[Contestant] = [
        RawAiohttp(),
        RawHttpx(),
        AsyncLLM("openai", "native"),
        AsyncLLM("anthropic", "native"),
        AsyncLLMDriver("openai"),
        AsyncLLMDriverViaStream("openai"),
        AsyncLLM("openai", "sdk"),
        AsyncLLM("anthropic", "sdk"),
        OpenAISDK(),
        AnthropicSDK(),
    ]
    if include_litellm:
        out += [LiteLLM(), LiteLLMRouter()]
    return out
