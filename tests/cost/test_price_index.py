"""The compact price index: it agrees with the installed genai-prices, answers without
importing it, is rebuilt once per machine for another genai-prices version, and steps aside
when it cannot be."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import genai_prices
import orjson
import pytest
from genai_prices import data_snapshot
from genai_prices.data import providers as gp_providers
from structlog.testing import capture_logs

from asyncllm import Usage
from asyncllm.cost import Prices, _price_build, _price_index, _prices
from asyncllm.cost._price_build import build, dumps, write_index
from asyncllm.cost._price_index import (
    DEFER,
    INDEX_PATH,
    PriceIndex,
    built_index_path,
    installed_genai_prices_version,
    load_index,
)

TODAY = datetime.now(tz=UTC).date()


def test_committed_index_matches_the_installed_genai_prices() -> None:
    # The test extra pins the genai-prices the committed index was built from. After bumping
    # the pin, this fails until `python -m asyncllm.cost._price_build` is run.
    assert INDEX_PATH.read_bytes() == dumps(build()), (
        "asyncllm/cost/price_index.jsonl is stale: run python -m asyncllm.cost._price_build"
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> PriceIndex:
    """The index the library uses with the installed genai-prices: the shipped one, or one
    built for this version (so the comparisons below hold for any genai-prices)."""
    shipped = load_index()
    if shipped is not None:
        return shipped
    path = tmp_path_factory.mktemp("index") / "price_index.jsonl"
    write_index(path)
    built = load_index(path)
    assert built is not None
    return built


def _refs(model: Any) -> list[str]:
    """References that exercise a model's match logic: its id and every clause argument,
    plus a dated suffix for prefix clauses."""
    out = [model.id]

    def walk(logic: Any) -> None:
        for attr in ("or_", "and_"):
            for c in getattr(logic, attr, ()):
                walk(c)
        for attr in ("equals", "starts_with", "contains", "ends_with"):
            value = getattr(logic, attr, None)
            if value:
                out.append(value)
                if attr == "starts_with":
                    out.append(value + "-2025-01-01")

    walk(model.match)
    return out


def test_index_resolves_every_reference_like_genai_prices(index: PriceIndex) -> None:
    snapshot = data_snapshot.DataSnapshot(providers=gp_providers, from_auto_update=False)
    checked = 0
    for p in gp_providers:
        refs = [r for m in p.models for r in _refs(m)] + ["no-such-model-xyz"]
        for ref in refs:
            try:
                _, info = snapshot.find_provider_model(ref, None, p.id, None)
                want: Any = info.id
            except LookupError:
                want = None
            found = index._model(index._by_id[p.id], ref.lower(), True)
            got = None if found is None else found[0]
            assert got == want, (p.id, ref)
            checked += 1
    assert checked > 3000


MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("groq", "llama-3.1-8b-instant"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("mistral", "mistral-large-latest"),
]
USAGES = [
    Usage(input_tokens=1000, output_tokens=500),
    Usage(input_tokens=3000, output_tokens=700, cache_read_tokens=500, cache_write_tokens=1000),
    Usage(input_tokens=250_000, output_tokens=2000, cache_read_tokens=10_000),
]


@pytest.mark.parametrize(("provider_id", "model"), MODELS)
def test_index_costs_equal_genai_prices(index: PriceIndex, provider_id: str, model: str) -> None:
    prices = Prices(provider_ids={"x": provider_id})
    for u in USAGES:
        gu = genai_prices.Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
        )
        want = float(genai_prices.calc_price(gu, model, provider_id=provider_id).total_price)
        got = prices.cost(provider="p", kind="x", model=model, usage=u, local=False)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15), (provider_id, model, u)
    # The answer came from the index, except for time-of-day prices (deepseek's off-peak
    # rates), which only genai-prices resolves.
    deferred = index.find(provider_id, model, TODAY) is DEFER
    assert deferred == (provider_id == "deepseek")


def test_client_open_and_first_priced_request_never_import_genai_prices() -> None:
    code = """
import sys, anyio
from asyncllm import Client, Usage
from asyncllm.testing import FakeProvider, FakeReply

async def main():
    fake = FakeProvider("openai", kind="openai", model="gpt-4o-mini",
                        replies=[FakeReply(usage=Usage(1000, 500))])
    async with Client(fake) as client:
        r = await client.complete("hello")
    assert abs(r.cost_usd - 0.00045) < 1e-12, r.cost_usd
    print(sorted(m for m in sys.modules if m.startswith("genai_prices")))

anyio.run(main)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture
def stale_shipped_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped index as a release built for an older genai-prices would ship it; the
    process-wide index is read afresh; builds go to ``tmp_path / "cache"``."""
    lines = INDEX_PATH.read_bytes().split(b"\n", 1)
    head = orjson.loads(lines[0])
    head["genai_prices"] = "0.0.1"
    stale = tmp_path / "shipped.jsonl"
    stale.write_bytes(orjson.dumps(head) + b"\n" + lines[1])
    cache = tmp_path / "cache"
    monkeypatch.setattr(_price_index, "INDEX_PATH", stale)
    monkeypatch.setenv("ASYNCLLM_CACHE_DIR", str(cache))
    monkeypatch.setattr(_prices, "_INDEX", [])
    yield cache


def _cost_of_gpt_4o_mini() -> float | None:
    return Prices().cost(
        provider="o", kind="openai", model="gpt-4o-mini", usage=Usage(1000, 500), local=False
    )


def test_another_genai_prices_gets_its_own_index_built_once(stale_shipped_index: Path) -> None:
    assert load_index() is None  # the shipped index no longer applies
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    events = [e["event"] for e in logs]
    assert "cost.price_index_built" in events and "cost.price_index_stale" not in events
    version = installed_genai_prices_version()
    assert version is not None
    built = built_index_path(version)
    assert built is not None and built.parent == stale_shipped_index
    assert built.read_bytes() == dumps(build())
    assert _prices._INDEX[0] is not None and _prices._INDEX[0].version == version
    # The next process finds it: nothing is built again, nothing is logged.
    _prices._INDEX.clear()
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert logs == []
    assert _prices._INDEX[0] is not None


def test_after_the_first_build_a_process_never_imports_genai_prices(
    stale_shipped_index: Path, tmp_path: Path
) -> None:
    code = f"""
import sys
from pathlib import Path
from asyncllm.cost import _price_index
_price_index.INDEX_PATH = Path({str(_price_index.INDEX_PATH)!r})
from asyncllm.cost import Prices
from asyncllm import Usage
cost = Prices().cost(provider="o", kind="openai", model="gpt-4o-mini",
                     usage=Usage(1000, 500), local=False)
assert abs(cost - 0.00045) < 1e-12, cost
print(sorted(m for m in sys.modules if m.startswith("genai_prices")) == [])
"""
    env = {**os.environ, "ASYNCLLM_CACHE_DIR": str(stale_shipped_index)}

    def run() -> str:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
            check=False, env=env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run() == "False"  # the first process after the upgrade builds (and imports)
    assert run() == "True"  # every later one reads what it built
    assert run() == "True"


@pytest.mark.parametrize("where", ["", "a-file/cache"])
def test_no_writable_cache_directory_falls_back_to_genai_prices(
    stale_shipped_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("ASYNCLLM_CACHE_DIR", where and str(tmp_path / where))
    with capture_logs() as logs:
        p = Prices()
        assert p.cost(
            provider="o", kind="openai", model="gpt-4o-mini", usage=Usage(1000, 500), local=False
        ) == pytest.approx(0.00045)
    stale = [e for e in logs if e["event"] == "cost.price_index_stale"]
    assert len(stale) == 1 and stale[0]["log_level"] == "warning"
    reason = "no cache directory" if where == "" else "building it failed: "
    assert reason in stale[0]["detail"]
    assert p._snapshot is not None  # genai-prices answered
    assert not list(tmp_path.glob("**/*.tmp"))  # no half-written file left behind


def test_a_genai_prices_the_builder_cannot_read_falls_back(
    stale_shipped_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def new_clause_kind() -> Any:
        raise TypeError("unknown genai-prices match clause ClauseGlob(...)")

    monkeypatch.setattr(_price_build, "build", new_clause_kind)
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    stale = [e for e in logs if e["event"] == "cost.price_index_stale"]
    assert len(stale) == 1 and "TypeError: unknown genai-prices match clause" in stale[0]["detail"]
    assert not stale_shipped_index.exists() or not any(stale_shipped_index.iterdir())


def test_build_cli_writes_the_path_given_and_refuses_an_unknown_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "index.jsonl"
    assert _price_build.main([str(target)]) == 0
    assert target.read_bytes() == dumps(build())
    with pytest.raises(SystemExit) as exc:
        _price_build.main(["--bogus"])
    assert exc.value.code == 2
    assert not (Path.cwd() / "--bogus").exists()


def test_compact_dated_reference_defers_to_genai_prices(index: PriceIndex) -> None:
    # genai-prices rewrites compact dates only as a fallback: the index must not say "unknown".
    assert index.find("openai", "gpt-4o-mini-20240718", TODAY) is DEFER
    assert index.find("openai", "no-such-model", TODAY) is None
    p = Prices()
    got = p.cost(
        provider="o", kind="openai", model="gpt-4o-mini-20240718", usage=Usage(1000, 500),
        local=False,
    )  # fmt: skip
    assert got == pytest.approx(0.00045)


async def test_aload_builds_the_index_in_a_worker_thread(
    stale_shipped_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[bool] = []
    real = _price_build.write_index

    def recording(path: Path) -> int:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(path)

    monkeypatch.setattr(_price_build, "write_index", recording)
    await Prices().aload()
    assert threads == [False]  # built once, off the event loop's thread
    assert _prices._INDEX[0] is not None
    await Prices().aload()  # already loaded: nothing more
    assert threads == [False]


async def test_aload_reads_a_current_shipped_index_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_prices, "_INDEX", [])

    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a worker thread was started for the shipped index")

    monkeypatch.setattr("anyio.to_thread.run_sync", no_thread)
    await Prices().aload()
    assert _prices._INDEX[0] is not None
