"""A throwaway ``redis-server`` (the shared ``tests/_redis.py`` helper) for budget tests.

Skipped when ``redis-server`` is not installed, unless ``CI`` is set (then it fails).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _redis import redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server, started once per test session."""
    with redis_server(tmp_path_factory.mktemp("redis-budget")) as url:
        yield url
