"""Fixtures for the end-to-end tests: a throwaway redis-server for the ``redis``-marked ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _redis import redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server on a free loopback port (tests use distinct keys)."""
    with redis_server(tmp_path_factory.mktemp("redis-e2e")) as url:
        yield url
