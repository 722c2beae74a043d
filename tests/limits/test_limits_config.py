"""RateLimit configuration, the limiter() factory and the leaky bucket on its own."""

from __future__ import annotations

import math

import pytest

from asyncllm import ChatRequest, ConfigurationError, Message, Usage
from asyncllm.limits import (
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
    limiter,
    reservation_tokens,
    usage_tokens,
)
from asyncllm.limits._bucket import LeakyBucket


def test_from_mapping_reads_a_toml_table() -> None:
    cfg = RateLimit.from_mapping(
        {"rpm": 500, "tpm": 200_000, "max_concurrency": 16, "period": 60, "per_model": True}
    )
    assert cfg == RateLimit(rpm=500, tpm=200_000, max_concurrency=16, per_model=True)
    assert cfg.request_rate == pytest.approx(500 / 60)
    assert cfg.token_rate == pytest.approx(200_000 / 60)
    assert RateLimit().request_rate is None and RateLimit().token_rate is None


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown rate limit key 'max_concurency'.*"
                       r"did you mean 'max_concurrency'"):  # fmt: skip
        RateLimit.from_mapping({"max_concurency": 3})
    with pytest.raises(ConfigurationError, match="must be a table"):
        RateLimit.from_mapping([("rpm", 3)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"rpm": 0}, "rpm must be a positive number"),
        ({"rpm": -5}, "rpm must be a positive number"),
        ({"tpm": "lots"}, "tpm must be a positive number"),
        ({"tpm": math.inf}, "tpm must be a positive number"),
        ({"rpm": True}, "rpm must be a positive number"),
        ({"max_concurrency": 0}, "max_concurrency must be an integer >= 1"),
        ({"max_concurrency": 2.5}, "max_concurrency must be an integer >= 1"),
        ({"period": 0}, "period must be a positive number"),
        ({"burst": 0}, r"burst must be a fraction in \(0, 1\]"),
        ({"burst": 1.5}, r"burst must be a fraction in \(0, 1\]"),
        ({"per_model": "yes"}, "per_model must be true or false"),
        ({"redis_url": "http://x"}, "redis_url must start with"),
        ({"redis_key": ""}, "redis_key must be a non-empty string"),
        ({"lease_ttl": -1}, "lease_ttl must be a positive number"),
    ],
)
def test_bad_values_are_configuration_errors(data: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RateLimit.from_mapping(data)


def test_redis_url_password_is_not_in_repr() -> None:
    cfg = RateLimit(rpm=1, redis_url="redis://:hunter2secret@localhost:6379/0", redis_key="k")
    assert "hunter2secret" not in repr(cfg)


def test_factory_picks_the_backend() -> None:
    a = limiter(rpm=10, name="openai")
    assert isinstance(a, RateLimiter) and a.name == "openai" and a.config.rpm == 10
    b = limiter({"tpm": 1000, "max_concurrency": 2})
    assert isinstance(b, RateLimiter) and b.config.max_concurrency == 2
    c = limiter(RateLimit(rpm=5, redis_url="redis://127.0.0.1:1/0", redis_key="acct"))
    assert isinstance(c, RedisRateLimiter) and c.config.redis_key == "acct"
    assert "acct" in repr(c) and "127.0.0.1" not in repr(c)
    with pytest.raises(ConfigurationError, match="not both"):
        limiter(RateLimit(rpm=1), rpm=2)
    with pytest.raises(ConfigurationError, match="redis_key is set but redis_url is not"):
        limiter(rpm=1, redis_key="acct")
    with pytest.raises(ConfigurationError, match="needs redis_key"):
        limiter(rpm=1, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="unknown rate limit key 'rps'"):
        limiter(rps=3)
    with pytest.raises(ConfigurationError, match="exactly one of url= or client="):
        RedisRateLimiter(rpm=1, key="k")


def test_token_helpers() -> None:
    req = ChatRequest(messages=(Message(role="user", content="x" * 70),), max_tokens=100)
    assert reservation_tokens(req) == req.estimated_input_tokens() + 100
    no_max = ChatRequest(messages=(Message(role="user", content="hi"),))
    assert reservation_tokens(no_max, default_output_tokens=7) == (
        no_max.estimated_input_tokens() + 7
    )
    assert usage_tokens(Usage(10, 5, cache_read_tokens=3, cache_write_tokens=2)) == 17


def test_bucket_drains_refunds_and_fills() -> None:
    b = LeakyBucket(capacity=10, rate=2, now=0.0)
    assert b.delay(10, 0.0) == 0.0
    b.take(10)
    assert b.delay(1, 0.0) == pytest.approx(0.5)
    assert b.delay(1, 0.5) == 0.0
    b.give_back(100, 0.5)
    assert b.level == 0.0  # never below empty
    b.fill(1.0)
    assert b.level == 10
    assert b.delay(11, 1.0) == pytest.approx(5.0)  # oversized: waits for an empty bucket
    assert not b.lower_room(20, 1.0)  # more room than capacity: no change
    assert b.lower_room(0, 3.0) and b.level == 10
    b.leak(1.0)  # time going backwards drains nothing
    assert b.level == 10
    assert "capacity=10" in repr(b)
    with pytest.raises(ValueError, match="positive"):
        LeakyBucket(capacity=0, rate=1, now=0)
