"""Fixtures for the Ray tests: one local Ray (2 CPUs) for the Ray tests, and a Redis.

Both are package-scoped: Ray is shut down (its worker processes and patched streams gone)
and Redis stopped when the last Ray test has run, so the tests after them run on a quiet
machine with nothing of Ray's left in the process.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from _redis import redis_server


@pytest.fixture(scope="package")
def ray_session() -> Iterator[Any]:
    """A local Ray shared by every Ray test, shut down after the last one."""
    ray = pytest.importorskip("ray")
    with warnings.catch_warnings():  # Ray's own deprecation notices about its settings
        warnings.simplefilter("ignore", DeprecationWarning)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="package")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a throwaway redis-server (tests use distinct keys and namespaces)."""
    with redis_server(tmp_path_factory.mktemp("redis-ray")) as url:
        yield url
