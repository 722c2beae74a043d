"""``asyncllm.batch.__all__`` is exactly what the package exports, each name documented."""

from __future__ import annotations

import inspect

import asyncllm.batch as batch


def test_all_is_sorted_importable_and_documented() -> None:
    assert batch.__all__ == sorted(batch.__all__, key=lambda n: (not n.isupper(), n))
    for name in batch.__all__:
        obj = getattr(batch, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_every_public_attribute_is_in_all() -> None:
    public = {
        n
        for n, v in vars(batch).items()
        if not n.startswith("_") and getattr(v, "__module__", "").startswith("asyncllm")
    }
    assert public <= set(batch.__all__) | set(batch.__seams__)
