"""``asyncllm.abc`` is the public home of the protocols users implement or type against."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from typing import Any

import pytest

import asyncllm
import asyncllm.abc as abc
from asyncllm import ChatRequest, Message, Response, Usage
from asyncllm._lazy import lazy_exports

PROTOCOLS = [
    "Budget",
    "Cache",
    "Limiter",
    "Observer",
    "Permit",
    "Pricing",
    "Provider",
    "Reservation",
]


def test_abc_exports_the_protocols_and_info_types() -> None:
    for name in [*PROTOCOLS, "AttemptInfo", "RequestInfo", "FeedbackInfo", "ProviderStream"]:
        assert name in abc.__all__, name
        assert getattr(abc, name).__doc__, f"{name} has no docstring"
    assert sorted(abc.__all__) == abc.__all__
    for name in abc.__all__:
        assert hasattr(abc, name), name


def test_protocols_are_protocols() -> None:
    for name in PROTOCOLS:
        assert getattr(getattr(abc, name), "_is_protocol", False), name


def test_the_noop_defaults_satisfy_their_protocols_structurally() -> None:
    # mypy checks these assignments; at runtime they must at least exist and be cheap.
    limiter: abc.Limiter = abc.NoLimiter()
    budget: abc.Budget = abc.NoBudget()
    observer: abc.Observer = abc.NoObserver()
    pricing: abc.Pricing = abc.NoPricing()
    assert limiter.statistics() == {}
    assert pricing.cost(provider="p", kind="k", model="m", usage=Usage(1, 1), local=False) is None
    observer.request_started(
        abc.RequestInfo("id", ChatRequest([Message("user", "hi")]), "single", False, 0.0)
    )
    assert budget.reserve is not None


def test_a_user_observer_typed_against_abc_sees_requests() -> None:
    seen: list[str] = []

    class Recorder(abc.NoObserver):
        def request_finished(
            self, info: abc.RequestInfo, response: Response | None, error: BaseException | None
        ) -> None:
            seen.append(info.request_id)

    async def main() -> None:
        from asyncllm.testing import FakeProvider

        async with asyncllm.Client(FakeProvider(), observers=[Recorder()]) as client:
            await client.complete("hi")

    import asyncio

    asyncio.run(main())
    assert len(seen) == 1


def test_lazy_exports_imports_on_first_use_and_caches() -> None:
    module = types.ModuleType("asyncllm_lazy_probe")
    sys.modules[module.__name__] = module
    try:
        getattr_ = lazy_exports(module.__name__, {"dumps": "json"})
        module.__getattr__ = getattr_  # type: ignore[attr-defined]
        value: Any = module.dumps  # type: ignore[attr-defined]
        assert value is importlib.import_module("json").dumps
        assert vars(module)["dumps"] is value  # cached: the next lookup is a plain read
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            module.nope  # type: ignore[attr-defined]  # noqa: B018
    finally:
        del sys.modules[module.__name__]


def test_import_asyncllm_does_not_load_the_drivers_or_the_cache() -> None:
    code = (
        "import sys, asyncllm, asyncllm.abc\n"
        "heavy = [m for m in ('asyncllm.cache', 'asyncllm.providers._openai', 'aiohttp')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "asyncllm.OpenAIProvider; asyncllm.ResponseCache\n"
        "assert 'asyncllm.cache' in sys.modules and 'asyncllm.providers._openai' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_testing_registers_the_fake_provider_kind() -> None:
    """``providers/`` names no test double; importing ``asyncllm.testing`` registers it."""
    code = (
        "import asyncllm, asyncllm.providers as p\n"
        "assert 'fake' not in p.available_kinds(), p.available_kinds()\n"
        "import asyncllm.testing\n"
        "assert 'fake' in p.available_kinds()\n"
        "c = asyncllm.Client('fake:m', log=False)\n"
        "assert type(c.providers[0]).__name__ == 'FakeProvider'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
