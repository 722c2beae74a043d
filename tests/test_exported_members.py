"""``asyncllm.__all__`` is exactly what the package exports (httpx's test, adapted)."""

from __future__ import annotations

import asyncllm


def test_all_is_sorted_and_importable() -> None:
    names = [n for n in asyncllm.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (n[0].islower(), n))
    for name in asyncllm.__all__:
        assert hasattr(asyncllm, name), name


def test_every_public_attribute_is_in_all() -> None:
    public = {
        n
        for n, v in vars(asyncllm).items()
        if not n.startswith("_")
        and getattr(v, "__module__", "").startswith("asyncllm")
        and not isinstance(v, type(asyncllm))
    }
    assert public <= set(asyncllm.__all__)


def test_public_names_have_docstrings() -> None:
    for name in asyncllm.__all__:
        obj = getattr(asyncllm, name)
        if isinstance(obj, type):
            assert obj.__doc__, f"{name} has no docstring"
