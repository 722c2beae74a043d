"""The exception tree: retryability, redaction, the all-failed group."""

from __future__ import annotations

import pytest

import asyncllm as al


def test_tree_roots_and_retryability() -> None:
    for cls in (
        al.RateLimited,
        al.Overloaded,
        al.ServerError,
        al.ProviderTimeout,
        al.ConnectionFailed,
        al.StreamBroken,
        al.MalformedResponse,
    ):
        assert issubclass(cls, al.ProviderError) and cls("x").retryable
    for cls in (
        al.AuthenticationFailed,
        al.BadRequest,
        al.ContextWindowExceeded,
        al.ContentFiltered,
    ):
        assert issubclass(cls, al.ProviderError) and not cls("x").retryable
    assert issubclass(al.ContextWindowExceeded, al.BadRequest)
    assert issubclass(al.ProviderTimeout, TimeoutError)
    assert issubclass(al.DeadlineExceeded, TimeoutError)
    assert not al.BudgetExceeded("b", 1.0, 0.5).retryable
    assert al.CircuitOpen("p", 1.0).retryable


def test_messages_and_reprs_never_carry_keys() -> None:
    err = al.AuthenticationFailed(
        "Incorrect API key provided: sk-proj-abcdefghijklmnop1234", provider="openai"
    )
    assert "sk-proj" not in str(err) and "sk-proj" not in repr(err)
    assert "[REDACTED]" in str(err)
    assert (
        "abcdefghijklmnop" not in al.ServerError("Authorization: Bearer abcdefghijklmnop").message
    )


def test_rate_limited_carries_retry_after() -> None:
    err = al.RateLimited("slow down", retry_after=1.5, provider="p", model="m")
    assert err.retry_after == 1.5 and err.status_code == 429
    assert str(err) == "[p/m] (HTTP 429) slow down"


def test_stream_broken_keeps_partial_text() -> None:
    err = al.StreamBroken("reset", partial_text="Hel", chunks_received=2)
    assert err.partial_text == "Hel" and "2 chunks" in str(err)


def test_all_providers_failed_is_an_exception_group() -> None:
    group = al.AllProvidersFailed("all failed", [al.ServerError("a"), al.BadRequest("b")])
    assert isinstance(group, ExceptionGroup) and isinstance(group, al.AsyncLLMError)
    assert group.retryable
    assert not al.AllProvidersFailed("x", [al.BadRequest("b")]).retryable
    with pytest.raises(ExceptionGroup) as info:
        try:
            raise group
        except* al.ServerError as matched:
            assert isinstance(matched, al.AllProvidersFailed)
            raise
    assert info.group_contains(al.ServerError)


def test_cache_closed_and_budget_unavailable_are_in_the_one_tree() -> None:
    import asyncllm
    import asyncllm.cache
    import asyncllm.cost
    from asyncllm import _exceptions

    # One definition, importable where it always was.
    assert asyncllm.CacheClosed is _exceptions.CacheClosed is asyncllm.cache.CacheClosed
    assert (
        asyncllm.BudgetUnavailable
        is _exceptions.BudgetUnavailable
        is asyncllm.cost.BudgetUnavailable
    )
    assert issubclass(asyncllm.CacheClosed, asyncllm.AsyncLLMError)
    assert issubclass(asyncllm.BudgetUnavailable, asyncllm.BudgetExceeded)
    err = asyncllm.BudgetUnavailable("daily", 0.5, ConnectionError("down"))
    assert "daily" in str(err) and "unavailable" in str(err)
    assert "CacheClosed" in (_exceptions.__doc__ or "")
    assert "BudgetUnavailable" in (_exceptions.__doc__ or "")


def test_every_exception_class_in_the_package_is_rooted() -> None:
    """Every public exception is an AsyncLLMError and drawn in the tree diagram."""
    import asyncllm
    from asyncllm import _exceptions

    for name in asyncllm.__all__:
        obj = getattr(asyncllm, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, asyncllm.AsyncLLMError), name
            assert obj.__module__ == "asyncllm._exceptions", name
            assert name in (_exceptions.__doc__ or ""), name


def test_every_exception_any_public_face_exports_is_in_the_tree() -> None:
    """Not only the top level: each room's face (asyncllm.cache, .cost, .batch...)."""
    import importlib
    import pkgutil

    import asyncllm
    from asyncllm import _exceptions

    faces = [asyncllm] + [
        importlib.import_module(f"asyncllm.{m.name}")
        for m in pkgutil.iter_modules(asyncllm.__path__)
        if not m.name.startswith("_") and m.name not in ("ray",)  # ray: optional extra
    ]
    checked = set()
    for face in faces:
        for name in getattr(face, "__all__", ()):
            obj = getattr(face, name)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                where = f"{face.__name__}.{name}"
                assert issubclass(obj, asyncllm.AsyncLLMError), where
                assert obj.__module__ == "asyncllm._exceptions", where
                assert name in (_exceptions.__doc__ or ""), where
                checked.add(name)
    assert {"InvalidCacheEntry", "BatchInputError"} <= checked
