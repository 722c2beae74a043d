"""Fixtures for the limits tests: a redis-server shared by this directory's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _redis import redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a throwaway redis-server (tests use distinct keys, so one is enough)."""
    with redis_server(tmp_path_factory.mktemp("redis-limits")) as url:
        yield url
