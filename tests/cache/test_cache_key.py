"""The cache key: requests that must share a key, and requests that must never share one."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
import pytest

from asyncllm import ChatRequest, InvalidRequestError, Message
from asyncllm._build import build_request
from asyncllm.cache import KEY_VERSION, cache_key, canonical_request
from asyncllm.cache._key import is_secret_name

ROUTE = (("openai", "openai", "gpt-4o-mini"),)

TOOL_A = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_B = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def req(messages: object = "What is 2+2?", **params: Any) -> ChatRequest:
    return build_request(messages, params)


def key(request: ChatRequest, route: Any = ROUTE, **kw: Any) -> str:
    return cache_key(request, route, **kw)


def reorder(d: dict[str, Any]) -> dict[str, Any]:
    """The same mapping with its keys in reverse insertion order, at every depth."""
    return {k: reorder(v) if isinstance(v, dict) else v for k, v in reversed(list(d.items()))}


def test_key_shape_is_versioned_sha256() -> None:
    k = key(req())
    assert re.fullmatch(rf"asyncllm:v{KEY_VERSION}:[0-9a-f]{{64}}", k)
    assert key(req()) == k  # stable


def test_namespace_separates_tenants_and_is_validated() -> None:
    a, b = key(req(), namespace="tenant-a"), key(req(), namespace="tenant-b")
    assert a != b != key(req())
    assert a.startswith("asyncllm:v1:tenant-a:")
    with pytest.raises(InvalidRequestError):
        key(req(), namespace="bad namespace!")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # Unicode form: "é" precomposed vs e + combining acute.
        (req("caf\u00e9"), req("cafe\u0301")),
        # Line endings.
        (req("line one\r\nline two\rthree"), req("line one\nline two\nthree")),
        # Trailing whitespace per line and at the end.
        (req("line one   \nline two\t\n\n  "), req("line one\nline two")),
        # A plain string vs a one-text-part content list.
        (
            req([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
            req([{"role": "user", "content": "hi"}]),
        ),
        # Part dict key order.
        (
            req([{"role": "user", "content": [{"text": "hi", "type": "text"}]}]),
            req([{"role": "user", "content": "hi"}]),
        ),
        # stop as a string vs a one-element list; stop order and duplicates.
        (req(stop="END"), req(stop=["END"])),
        (req(stop=["a", "b", "a"]), req(stop=["b", "a"])),
        (req(stop=[]), req()),
        # int vs float for equal numbers.
        (req(temperature=0), req(temperature=0.0)),
        (req(top_p=1), req(top_p=1.0)),
        # Fields that never change the output.
        (req(tags={"team": "a"}, metadata={"trace": 1}), req()),
        # System prompt normalization.
        (req(system="Be brief.  \r\n"), req(system="Be brief.")),
        # Reordered keys in response_format, provider_options, tool_choice.
        (
            req(response_format={"type": "json_schema", "json_schema": {"name": "x", "a": 1}}),
            req(response_format={"json_schema": {"a": 1, "name": "x"}, "type": "json_schema"}),
        ),
        (
            req(provider_options={"logprobs": True, "top_logprobs": 2}),
            req(provider_options={"top_logprobs": 2, "logprobs": True}),
        ),
        (
            req(tool_choice={"type": "function", "function": {"name": "f"}}),
            req(tool_choice={"function": {"name": "f"}, "type": "function"}),
        ),
        # Dict order inside a tool does not matter.
        (req(tools=[TOOL_A, TOOL_B]), req(tools=[reorder(TOOL_A), reorder(TOOL_B)])),
        # Integral floats inside structured values.
        (
            req(provider_options={"presence_penalty": 1.0}),
            req(provider_options={"presence_penalty": 1}),
        ),
        # Empty tools / provider_options are none.
        (req(tools=[], provider_options={}), req()),
        # Tuples vs lists inside provider options.
        (req(provider_options={"x": (1, 2)}), req(provider_options={"x": [1, 2]})),
    ],
)
def test_requests_that_must_share_a_key(a: ChatRequest, b: ChatRequest) -> None:
    assert key(a) == key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (req("What is 2+2?"), req("What is 2+3?")),
        # Leading whitespace and inner whitespace are kept by default.
        (req("  indented"), req("indented")),
        (req("a  b"), req("a b")),
        # Sampling parameters.
        (req(temperature=0), req(temperature=0.5)),
        (req(temperature=0), req()),
        (req(top_p=0.9), req(top_p=1)),
        (req(max_tokens=10), req(max_tokens=11)),
        (req(seed=1), req(seed=2)),
        (req(stop=["a"]), req(stop=["b"])),
        # Stop sequences keep their whitespace: "\n" is not "".
        (req(stop=["\n"]), req(stop=["\n\n"])),
        # Models.
        (req(model="gpt-4o"), req(model="gpt-4o-mini")),
        # Provider-specific options are part of the key (a bug peers shipped).
        (req(provider_options={"logprobs": True}), req()),
        (req(provider_options={"reasoning_effort": "low"}), req(provider_options={})),
        (
            req(provider_options={"thinking": {"type": "enabled", "budget_tokens": 1024}}),
            req(provider_options={"thinking": {"type": "enabled", "budget_tokens": 2048}}),
        ),
        # Tool order matters.
        (req(tools=[TOOL_A, TOOL_B]), req(tools=[TOOL_B, TOOL_A])),
        (req(tools=[TOOL_A]), req()),
        (req(tool_choice="auto"), req(tool_choice="required")),
        (req(response_format={"type": "json_object"}), req()),
        # Message order, roles and system prompt.
        (
            req([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
            req([{"role": "user", "content": "b"}, {"role": "user", "content": "a"}]),
        ),
        (req([{"role": "user", "content": "x"}]), req([{"role": "assistant", "content": "x"}])),
        (req(system="Be brief."), req()),
        (
            req("x", system="Be brief."),
            req([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]),
        ),
        # A text part with extra fields (Anthropic cache_control) is not the plain string.
        (
            req([{"role": "user", "content": [{"type": "text", "text": "hi", "x": 1}]}]),
            req([{"role": "user", "content": "hi"}]),
        ),
        # Two text parts are not one string.
        (
            req([{"role": "user", "content": ["a", "b"]}]),
            req([{"role": "user", "content": "ab"}]),
        ),
        # Booleans are not numbers.
        (req(provider_options={"x": True}), req(provider_options={"x": 1})),
    ],
)
def test_requests_that_must_not_share_a_key(a: ChatRequest, b: ChatRequest) -> None:
    assert key(a) != key(b)


def test_different_routes_never_share() -> None:
    r = req()
    routes = [
        (("openai", "openai", "gpt-4o-mini"),),
        (("openai", "openai", "gpt-4o"),),
        (("openai-eu", "openai", "gpt-4o-mini"),),
        (("openai", "openai_compatible", "gpt-4o-mini"),),
        (("openai", "openai", "gpt-4o-mini"), ("anthropic", "anthropic", "claude")),
        (("anthropic", "anthropic", "claude"), ("openai", "openai", "gpt-4o-mini")),
        (),
    ]
    keys = {key(r, route) for route in routes}
    assert len(keys) == len(routes)


def test_fold_whitespace_is_opt_in() -> None:
    a, b = req("a  b\n\n c\t"), req("a b c")
    assert key(a) != key(b)
    assert key(a, fold_whitespace=True) == key(b, fold_whitespace=True)


def test_message_objects_and_dicts_share() -> None:
    a = ChatRequest(messages=(Message("user", "hi"),), temperature=0)
    b = req([{"role": "user", "content": "hi"}], temperature=0.0)
    assert key(a) == key(b)


def test_stop_given_as_a_bare_string_on_a_raw_request() -> None:
    # ChatRequest built directly (not through build_request) may carry a bare string.
    a = ChatRequest(messages=(Message("user", "hi"),), stop="END")  # type: ignore[arg-type]
    assert key(a) == key(req("hi", stop=["END"]))


@pytest.mark.parametrize(
    "secret",
    [
        {"api_key": "sk-abcdefghijklmnop"},
        {"x-api-key": "whatever-123456"},
        {"extra_headers": {"Authorization": "Bearer abcdefghijklmnop"}},
        {"extra_headers": {"X-Custom": "Bearer abcdefghijklmnopqr"}},
        {"access_token": "t0k3n"},
        {"client_secret": "s3cr3t"},
        {"Api-Key": "plain-key-value"},
        {"nested": {"deeper": {"password": "hunter2"}}},
        {"note": "my key is sk-ant-abcdefghijkl"},
    ],
)
def test_credentials_never_reach_the_key(secret: dict[str, Any]) -> None:
    base = {"logprobs": True}
    with_secret = req(provider_options={**base, **secret})
    canon = orjson.dumps(canonical_request(with_secret, ROUTE))
    for leaf in _leaves(secret):
        assert leaf.encode() not in canon
    # Another credential, same answer: the key does not change.
    other = req(provider_options={**base, **_swap(secret)})
    assert key(with_secret) == key(other)
    # A credential-only option adds nothing to the key.
    if all(isinstance(v, str) for v in secret.values()):
        assert key(with_secret) == key(req(provider_options=base))


def _leaves(d: Any) -> list[str]:
    if isinstance(d, dict):
        return [x for v in d.values() for x in _leaves(v)]
    return [d] if isinstance(d, str) else []


def _swap(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _swap(v) for k, v in d.items()}
    return "sk-zzzzzzzzzzzzzzzzzzzz" if isinstance(d, str) else d


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("x-api-key", True),
        ("Authorization", True),
        ("proxy-authorization", True),
        ("access_token", True),
        ("token", True),
        ("client_secret", True),
        ("cookie", True),
        ("max_tokens", False),
        ("max_completion_tokens", False),
        ("top_k", False),
        ("thinking", False),
        ("logprobs", False),
    ],
)
def test_secret_name_rule(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": float("nan")},
        {"provider_options": {"x": float("inf")}},
        {"provider_options": {"x": {1, 2}}},
        {"provider_options": {1: "x"}},
        {"provider_options": {"x": object()}},
        {"provider_options": {"x": 2**70}},
        {"provider_options": {"x": "\ud800"}},
    ],
)
def test_unkeyable_values_raise_a_typed_error(bad: dict[str, Any]) -> None:
    r = dataclasses.replace(req(), **bad)
    with pytest.raises(InvalidRequestError):
        key(r)


def test_canonical_form_is_what_the_key_hashes() -> None:
    r = req("hi  \r\n", system="S", temperature=0.0, stop="X", tags={"a": "b"})
    canon = canonical_request(r, ROUTE)
    assert canon["messages"] == [{"role": "user", "content": "hi"}]
    assert canon["temperature"] == 0 and isinstance(canon["temperature"], int)
    assert canon["stop"] == ["X"]
    assert "tags" not in canon and "metadata" not in canon
    assert canon["route"] == [["openai", "openai", "gpt-4o-mini"]]
