"""Provider drivers: one module each, behind the :class:`Provider` protocol.

Specs such as ``"openai:gpt-4o-mini"``, ``"anthropic:claude-3-5-haiku-latest"`` or
``"ollama:llama3.1:8b"`` name a driver kind and a model (split at the first colon).
Driver modules are imported only when a spec names them, so ``import asyncllm`` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError as _ConfigurationError
from .._lazy import lazy_exports as _lazy_exports
from ._base import BaseProvider, Provider, ProviderStream, StreamAccumulator
from ._http import HttpResources

if TYPE_CHECKING:
    from ._anthropic import AnthropicProvider
    from ._openai import OpenAIProvider
    from ._openai_compatible import OpenAICompatibleProvider, lmstudio, ollama, vllm

__all__ = [
    "AnthropicProvider",
    "BaseProvider",
    "HttpResources",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderStream",
    "StreamAccumulator",
    "available_kinds",
    "lmstudio",
    "ollama",
    "register",
    "resolve",
    "vllm",
]

# Concrete drivers import aiohttp: load them when first named, not with the package.
_LAZY = {
    "AnthropicProvider": "._anthropic",
    "OpenAIProvider": "._openai",
    "OpenAICompatibleProvider": "._openai_compatible",
    "lmstudio": "._openai_compatible",
    "ollama": "._openai_compatible",
    "vllm": "._openai_compatible",
}


__getattr__ = _lazy_exports(__name__, _LAZY)


# kind -> "module:callable"; the callable is ``factory(*, name, model, **options)``.
_REGISTRY: dict[str, str | Callable[..., Provider]] = {
    "openai": "asyncllm.providers._openai:OpenAIProvider",
    "anthropic": "asyncllm.providers._anthropic:AnthropicProvider",
    "openai_compatible": "asyncllm.providers._openai_compatible:OpenAICompatibleProvider",
    "ollama": "asyncllm.providers._openai_compatible:ollama",
    "vllm": "asyncllm.providers._openai_compatible:vllm",
    "lmstudio": "asyncllm.providers._openai_compatible:lmstudio",
}


def available_kinds() -> list[str]:
    """The driver kinds a spec may name."""
    return sorted(_REGISTRY)


def register(kind: str, factory: str | Callable[..., Provider]) -> None:
    """Register a driver kind: a ``factory(*, name, model, **options)`` or its import path."""
    if ":" in kind or not kind:
        raise _ConfigurationError(f"invalid provider kind {kind!r}")
    _REGISTRY[kind] = factory


def _factory(kind: str) -> Callable[..., Provider]:
    entry = _REGISTRY.get(kind)
    if entry is None:
        raise _ConfigurationError(
            f"unknown provider {kind!r}; known: {', '.join(available_kinds())}"
        )
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        factory: Callable[..., Provider] = getattr(importlib.import_module(module), attr)
        return factory
    return entry


def resolve(spec: str | Provider, *, name: str | None = None, **options: Any) -> Provider:
    """Turn ``"kind:model"`` (or a driver object) into a driver.

    Args:
        spec: ``"openai:gpt-4o-mini"``, ``"ollama:llama3.1:8b"``, ``"anthropic"`` (default
            model), or a driver object (returned as is).
        name: Instance name; defaults to the kind.
        **options: Passed to the driver (``api_key``, ``base_url``, ``backend``...).

    Raises:
        ConfigurationError: unknown kind, or the driver's own set-up errors (a missing API
            key is reported here, before any network call).
    """
    if not isinstance(spec, str):
        if options or name:
            raise _ConfigurationError("options and name apply to string specs only")
        return spec
    kind, _, model = spec.partition(":")
    return _factory(kind)(name=name or kind, model=model or None, **options)
