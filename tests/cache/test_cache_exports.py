"""``asyncllm.cache.__all__`` is importable, documented, and matches the hook protocol."""

from __future__ import annotations

import asyncllm.cache
from asyncllm.abc import Cache as ResponseCacheProtocol


def test_every_exported_name_is_importable_and_documented() -> None:
    for name in asyncllm.cache.__all__:
        obj = getattr(asyncllm.cache, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_the_cache_has_every_method_of_the_orchestrator_protocol() -> None:
    cache = asyncllm.cache.ResponseCache()
    for name in ("complete", "stream", "statistics"):
        assert callable(getattr(cache, name))
        assert name in ResponseCacheProtocol.__dict__
