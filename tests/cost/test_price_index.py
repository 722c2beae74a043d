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
    installed_genai_prices,
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
    version, data = installed_genai_prices()
    assert version is not None and version == installed_genai_prices_version()
    built = built_index_path(version, data)
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
    reason = "no cache directory" if where == "" else "cannot be used: "
    assert reason in stale[0]["detail"]
    assert p._snapshot is not None  # genai-prices answered


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


@pytest.fixture
def builds(stale_shipped_index: Path, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per index build: whether it ran on the main (event loop's) thread."""
    threads: list[bool] = []
    real = _price_build.write_index

    def recording(path: Path) -> int:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(path)

    monkeypatch.setattr(_price_build, "write_index", recording)
    return threads


async def test_aload_builds_the_index_in_a_worker_thread(builds: list[bool]) -> None:
    threads = builds
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


async def test_a_client_opened_by_its_first_requests_builds_the_index_off_the_loop_once(
    builds: list[bool],
) -> None:
    # No `async with`: the first requests open the client. Concurrent first requests wait
    # for one opening, and the index for the installed genai-prices is built in a worker
    # thread, not on the event loop's.
    from asyncllm import Client
    from asyncllm.testing import FakeProvider, FakeReply

    threads = builds
    fake = FakeProvider(
        "openai", kind="openai", model="gpt-4o-mini",
        replies=[FakeReply(usage=Usage(1000, 500))] * 3,
    )  # fmt: skip
    client = Client(fake)
    try:
        import anyio

        costs: list[float | None] = []

        async def one() -> None:
            costs.append((await client.complete("hello")).cost_usd)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
    finally:
        await client.aclose()
    assert threads == [False]
    assert costs == [pytest.approx(0.00045)] * 3


def _built_path() -> Path:
    path = built_index_path(*installed_genai_prices())
    assert path is not None
    return path


def _damage(how: str, data: bytes) -> bytes:
    head, body = data.split(b"\n", 1)
    if how == "truncated":
        return data[: len(data) - 4000]
    if how == "byte changed":
        i = len(head) + 1 + len(body) // 2
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
    if how == "line out of the body":
        h = orjson.loads(head)
        h["providers"][0]["at"] = [len(body) - 10, 400]
        return orjson.dumps(h) + b"\n" + body
    if how == "a version from another asyncllm":
        h = orjson.loads(head)
        h["format"] = 3
        return orjson.dumps(h) + b"\n" + body
    if how == "other data under the same version":
        h = orjson.loads(head)
        h["data"] = "sha256=somethingelse"
        return orjson.dumps(h) + b"\n" + body
    header = {"null header": b"null", "list header": b"[3]", "no providers": b"{}"}[how]
    return header + b"\n" + body


DAMAGES = [
    "truncated",
    "byte changed",
    "line out of the body",
    "a version from another asyncllm",
    "other data under the same version",
    "null header",
    "list header",
    "no providers",
]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_built_index_is_built_again(stale_shipped_index: Path, how: str) -> None:
    # A file cut short by a full disk, changed by hand or left by another asyncllm is not an
    # index: it is never read (which would fail every priced answer), it is built again.
    assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    path = _built_path()
    good = path.read_bytes()
    path.write_bytes(_damage(how, good))
    assert load_index(path, built=True) is None
    _prices._INDEX.clear()
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert [e["event"] for e in logs] == ["cost.price_index_built"]
    assert path.read_bytes() == good


@pytest.mark.parametrize("how", ["null header", "list header", "no providers", "truncated"])
def test_a_damaged_shipped_index_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    shipped = tmp_path / "shipped.jsonl"
    shipped.write_bytes(_damage(how, INDEX_PATH.read_bytes()))
    monkeypatch.setattr(_price_index, "INDEX_PATH", shipped)
    assert load_index() is None  # no exception: a client still opens


def test_an_index_that_breaks_after_it_was_read_steps_aside_loudly(
    stale_shipped_index: Path,
) -> None:
    # Every priced answer goes on being priced: by genai-prices, after one warning.
    assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)  # builds, reads openai's line
    path = _built_path()
    path.write_bytes(path.read_bytes()[:2000])  # another provider's line is now cut off
    p = Prices()
    with capture_logs() as logs:
        for _ in range(2):
            got = p.cost(
                provider="a", kind="anthropic", model="claude-3-5-haiku-latest",
                usage=Usage(1000, 500), local=False,
            )  # fmt: skip
            assert got is not None and got > 0
    events = [e["event"] for e in logs]
    assert events.count("cost.price_index_unreadable") == 1
    assert _prices._INDEX == [None]
    assert p._snapshot is not None  # genai-prices answered


def test_a_cache_folder_others_may_write_is_made_private_and_used(
    stale_shipped_index: Path,
) -> None:
    # Made by an older asyncllm, or under umask 002: it is the user's, so it is fixed,
    # not refused (which would build and throw away an index in every process).
    stale_shipped_index.mkdir(mode=0o700)
    stale_shipped_index.chmod(0o777)
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert [e["event"] for e in logs] == ["cost.price_index_built"]
    assert stale_shipped_index.stat().st_mode & 0o777 == 0o755
    _prices._INDEX.clear()
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert logs == [] and _prices._INDEX[0] is not None


def test_a_built_index_others_may_write_is_not_trusted(stale_shipped_index: Path) -> None:
    assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    path = _built_path()
    path.chmod(0o666)
    assert load_index(path, built=True) is None
    _prices._INDEX.clear()
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert [e["event"] for e in logs] == ["cost.price_index_built"]  # written afresh
    assert path.stat().st_mode & 0o077 == 0


def test_a_shipped_index_entry_of_the_wrong_type_steps_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same size, valid JSON, a string where a price was: the lookup fails inside the
    # guarded step, never in the cost computed after a paid answer.
    data = INDEX_PATH.read_bytes()
    head = orjson.loads(data.split(b"\n", 1)[0])
    start, size = next(p["at"] for p in head["providers"] if p["id"] == "openai")
    base = data.index(b"\n") + 1
    at = data.index(b'["gpt-4o-mini",', base + start)
    entry = data.index(b"[null,[", at) + len(b"[null,[")  # its first dated coefficients
    end = data.index(b",", entry)  # the per-request base price
    forged = b'"' + b"x" * (end - entry - 2) + b'"'
    assert end - entry >= 2 and at < base + start + size
    damaged = data[:entry] + forged + data[end:]
    assert len(damaged) == len(data)
    shipped = tmp_path / "shipped.jsonl"
    shipped.write_bytes(damaged)
    monkeypatch.setattr(_price_index, "INDEX_PATH", shipped)
    monkeypatch.setattr(_prices, "_INDEX", [])
    assert load_index() is not None  # the header is whole: the damage is found on lookup
    with capture_logs() as logs:
        assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert [e["event"] for e in logs].count("cost.price_index_unreadable") == 1


def test_a_record_file_that_is_not_utf8_is_no_data_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.machinery

    pkg = tmp_path / "genai_prices"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    info = tmp_path / "genai_prices-9.9.9.dist-info"
    info.mkdir()
    (info / "RECORD").write_bytes(b"genai_prices/data.py,sha256=\xff\xfe,1\n")
    spec = importlib.machinery.ModuleSpec("genai_prices", None, origin=str(pkg / "__init__.py"))
    monkeypatch.setattr(_price_index.importlib.util, "find_spec", lambda name: spec)
    assert installed_genai_prices() == ("9.9.9", None)


def test_the_cache_folder_is_made_private(stale_shipped_index: Path) -> None:
    assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert stale_shipped_index.stat().st_mode & 0o777 == 0o700
    assert _built_path().stat().st_mode & 0o077 == 0


def test_a_folder_that_cannot_be_written_fails_before_building(
    stale_shipped_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("ASYNCLLM_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    built: list[int] = []
    real = _price_build.build

    def counting() -> dict[str, Any]:
        built.append(1)
        return real()

    monkeypatch.setattr(_price_build, "build", counting)
    assert _cost_of_gpt_4o_mini() == pytest.approx(0.00045)
    assert built == []  # the ~0.5 s build is not paid for a file that cannot be written


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cache" / "index.jsonl"
    seen: list[list[Path]] = []

    def failing_replace(src: Any, dst: Any) -> None:
        seen.append(list(target.parent.glob(".*.tmp")))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_price_build.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_index(target)
    assert len(seen) == 1 and len(seen[0]) == 1  # the temporary file existed...
    assert list(target.parent.iterdir()) == []  # ...and is gone, with no index


def test_threads_loading_together_build_once(builds: list[bool]) -> None:
    barrier = threading.Barrier(4)

    def load() -> None:
        barrier.wait()
        Prices().load()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(builds) == 1
    assert _prices._INDEX[0] is not None


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"ASYNCLLM_CACHE_DIR": "~/prices"}, "HOME/prices"),
        ({"XDG_CACHE_HOME": "relative/cache"}, "HOME/.cache/asyncllm"),
        ({"XDG_CACHE_HOME": "/abs/cache"}, "/abs/cache/asyncllm"),
    ],
)
def test_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], want: str
) -> None:
    monkeypatch.delenv("ASYNCLLM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert str(_price_index.cache_dir()) == want.replace("HOME", str(tmp_path))
