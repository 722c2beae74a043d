"""OpenAI-compatible servers (vLLM, Ollama, LM Studio, llama.cpp, TGI...).

Same wire format and backends as :class:`~asyncllm.providers._openai.OpenAIProvider`;
``base_url`` is required, the API key is optional, and the presets mark the provider
``local`` (self-hosted: costs nothing by default).
"""

from __future__ import annotations

from typing import Any

from ._openai import OpenAIProvider

__all__ = ["OpenAICompatibleProvider", "lmstudio", "ollama", "vllm"]

# The presets' servers all support ``stream_options.include_usage``: ask for the usage chunk,
# so their streams are booked at their real size, not their worst case.
_PRESET: dict[str, Any] = {"stream_usage": True}


class OpenAICompatibleProvider(OpenAIProvider):
    """Any server that speaks OpenAI's ``/chat/completions``.

    Args:
        base_url: API root including the version prefix (``http://host:8000/v1``).
        api_key: Optional key (sent as a bearer token when given).
        local: True for self-hosted servers: pricing treats them as free.
        name: Instance name (default ``"openai_compatible"``).
        **options: As for :class:`OpenAIProvider` (``model``, ``backend``, ``timeout``,
            ``extra_headers``, ``stream_usage``...).

    Raises:
        ConfigurationError: no ``base_url``, or an unknown backend.
    """

    kind = "openai_compatible"
    _key_env = None
    _url_env = None
    _default_url = None
    _key_required = False
    # Third-party servers: only when asked (``stream_usage=True``), as the official SDK.
    _stream_usage_default = False

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        local: bool = False,
        name: str = "openai_compatible",
        **options: Any,
    ) -> None:
        super().__init__(name=name, base_url=base_url, api_key=api_key, **options)
        self.local = local


def ollama(
    model: str | None = None,
    *,
    base_url: str = "http://localhost:11434/v1",
    name: str = "ollama",
    **options: Any,
) -> OpenAICompatibleProvider:
    """An Ollama server (``ollama serve``), local and free."""
    return OpenAICompatibleProvider(
        name=name, model=model, base_url=base_url, local=True, **{**_PRESET, **options}
    )


def vllm(
    model: str | None = None,
    *,
    base_url: str = "http://localhost:8000/v1",
    name: str = "vllm",
    **options: Any,
) -> OpenAICompatibleProvider:
    """A vLLM OpenAI-compatible server (``vllm serve MODEL``), local and free."""
    return OpenAICompatibleProvider(
        name=name, model=model, base_url=base_url, local=True, **{**_PRESET, **options}
    )


def lmstudio(
    model: str | None = None,
    *,
    base_url: str = "http://localhost:1234/v1",
    name: str = "lmstudio",
    **options: Any,
) -> OpenAICompatibleProvider:
    """An LM Studio local server, local and free."""
    return OpenAICompatibleProvider(
        name=name, model=model, base_url=base_url, local=True, **{**_PRESET, **options}
    )
