"""Driver construction: API keys, registry specs, presets, backends, lazy SDK imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _drivertest import req

from asyncllm import ConfigurationError
from asyncllm.providers import HttpResources, resolve
from asyncllm.providers._anthropic import AnthropicProvider
from asyncllm.providers._openai import OpenAIProvider
from asyncllm.providers._openai_compatible import OpenAICompatibleProvider, ollama
from asyncllm.testing import Simulator

SECRET = "sk-live-VerySecretKey0123456789"


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("backend", ["native", "sdk"])
@pytest.mark.parametrize(
    ("cls", "env"), [(OpenAIProvider, "OPENAI_API_KEY"), (AnthropicProvider, "ANTHROPIC_API_KEY")]
)
def test_missing_key_names_the_env_var(cls: type, env: str, backend: str) -> None:
    with pytest.raises(ConfigurationError, match=env):
        cls(model="m", backend=backend)


@pytest.mark.parametrize("spec", ["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"])
def test_registry_reports_missing_key(spec: str) -> None:
    with pytest.raises(ConfigurationError, match="API_KEY"):
        resolve(spec)


def test_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    p = resolve("openai:gpt-4o-mini")
    assert isinstance(p, OpenAIProvider)
    assert (p.name, p.default_model, p.base_url, p.local) == (
        "openai",
        "gpt-4o-mini",
        "http://127.0.0.1:9/v1",
        False,
    )


@pytest.mark.parametrize("backend", ["native", "sdk"])
@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
def test_key_never_in_repr_or_statistics(cls: type, backend: str) -> None:
    p = cls(model="m", api_key=SECRET, backend=backend)
    for text in (repr(p), str(p), str(p.statistics()), repr(vars(p))):
        assert SECRET not in text
    assert backend in repr(p)


def test_default_endpoints() -> None:
    assert OpenAIProvider(api_key="k").base_url == "https://api.openai.com/v1"
    assert AnthropicProvider(api_key="k").base_url == "https://api.anthropic.com"


def test_unknown_backend_and_misplaced_client() -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        OpenAIProvider(api_key="k", backend="curl")
    with pytest.raises(ConfigurationError, match="sdk"):
        AnthropicProvider(api_key="k", client=object())


def test_sdk_client_object_needs_no_key() -> None:
    p = OpenAIProvider(backend="sdk", client=object(), model="m")
    assert p.backend == "sdk"


@pytest.mark.parametrize(
    ("spec", "name", "model", "url"),
    [
        ("ollama:llama3.1:8b", "ollama", "llama3.1:8b", "http://localhost:11434/v1"),
        ("vllm:Qwen/Qwen2.5-7B", "vllm", "Qwen/Qwen2.5-7B", "http://localhost:8000/v1"),
        ("lmstudio:phi", "lmstudio", "phi", "http://localhost:1234/v1"),
    ],
)
def test_local_presets(spec: str, name: str, model: str, url: str) -> None:
    p = resolve(spec)
    assert isinstance(p, OpenAICompatibleProvider)
    assert (p.name, p.default_model, p.base_url, p.local, p.kind) == (
        name,
        model,
        url,
        True,
        "openai_compatible",
    )


def test_compatible_needs_base_url_not_key() -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        OpenAICompatibleProvider(model="m")
    p = resolve("openai_compatible:m", base_url="http://127.0.0.1:1/v1")
    assert p.local is False and p.kind == "openai_compatible"


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_keyless_local_server(backend: str) -> None:
    async with Simulator(output_tokens=4) as sim:
        http = HttpResources()
        p = ollama("llama3", base_url=sim.openai_base_url, backend=backend)
        await p.open(http)
        try:
            r = await p.complete(req())
        finally:
            await http.aclose()
        assert (r.provider, r.model, r.usage.output_tokens) == ("ollama", "llama3", 4)


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_not_opened(backend: str) -> None:
    p = OpenAIProvider(api_key="k", model="m", backend=backend)
    with pytest.raises(ConfigurationError, match="not open"):
        await p.complete(req())


def test_model_required() -> None:
    p = OpenAIProvider(api_key="k")
    with pytest.raises(ConfigurationError, match="model"):
        p.stream(req())


def test_sdks_are_imported_lazily() -> None:
    code = (
        "import sys, asyncllm\n"
        "from asyncllm.providers import resolve\n"
        "resolve('openai:m', api_key='k'); resolve('anthropic:m', api_key='k')\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'httpx2') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


async def test_user_supplied_sdk_clients() -> None:
    import anthropic
    import openai

    async with Simulator(output_tokens=5) as sim:
        oai = openai.AsyncOpenAI(api_key="k", base_url=sim.openai_base_url, max_retries=0)
        ant = anthropic.AsyncAnthropic(api_key="k", base_url=sim.anthropic_base_url, max_retries=0)
        http = HttpResources()
        providers = [
            OpenAIProvider(backend="sdk", client=oai, model="m", base_url=sim.openai_base_url),
            AnthropicProvider(
                backend="sdk", client=ant, model="m", base_url=sim.anthropic_base_url
            ),
        ]
        try:
            for p in providers:
                await p.open(http)
                r = await p.complete(req())
                assert (r.usage.output_tokens, r.finish_reason) == (5, "stop")
                async with p.stream(req()) as s:
                    texts = [c.text async for c in s if c.text]
                assert "".join(texts) == r.text
                await p.aclose()
        finally:
            await http.aclose()
            await oai.close()
            await ant.close()
        assert sim.stats.completed == 4


@pytest.mark.parametrize("backend", ["native", "sdk"])
async def test_local_presets_ask_for_stream_usage(backend: str) -> None:
    # vLLM, Ollama and LM Studio report usage on streams when asked: their streams are booked
    # at their real size. A generic compatible server is only asked when stream_usage=True.
    async with Simulator(output_tokens=4) as sim:
        http = HttpResources()
        preset = ollama("llama3", base_url=sim.openai_base_url, backend=backend)
        generic = OpenAICompatibleProvider(base_url=sim.openai_base_url, model="m", backend=backend)
        usages = []
        try:
            for p in (preset, generic):
                await p.open(http)
                async with p.stream(req()) as s:
                    usages.append([c.usage async for c in s if c.usage is not None])
        finally:
            await http.aclose()
    assert [u.output_tokens for u in usages[0]] == [4]
    assert usages[1] == []
