"""``run_batch`` in-process: iterable inputs, the stop event and its grace period, progress
callbacks, and the compact id set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from asyncllm.batch import BatchOptions, BatchProgress, run_batch
from asyncllm.batch._scan import IdSet
from asyncllm.testing import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(latency=0.01) as s:
        yield s


def _config(sim: Simulator) -> dict[str, Any]:
    return {
        "client": {"concurrency": 4},
        "providers": {"sim": {"spec": "openai_compatible:m1", "base_url": sim.openai_base_url}},
    }


def _records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_iterable_input_resumes_by_id_and_flags_duplicates(
    sim: Simulator, tmp_path: Path
) -> None:
    items: list[Any] = [{"custom_id": f"k{i}", "prompt": f"p{i}"} for i in range(10)]
    items.insert(5, {"custom_id": "k2", "prompt": "again"})
    items.append(b'{"custom_id": "raw", "prompt": "bytes line"}')
    out = tmp_path / "out.jsonl"
    summary = await run_batch(_config(sim), items, out)
    assert summary.status == "errors" and summary.progress.total is None
    recs = _records(out)
    assert len(recs) == 12
    dup = [r for r in recs if r["error"] is not None]
    assert len(dup) == 1 and dup[0]["custom_id"] is None
    assert dup[0]["error"]["code"] == "duplicate_custom_id"
    message = dup[0]["error"]["message"]
    assert "line 6" in message and "first on line 3" in message
    sent = sim.stats.received

    async def again() -> AsyncIterator[Any]:
        for x in items:
            yield x

    summary = await run_batch(_config(sim), again(), out)
    assert sim.stats.received == sent, "every id already had its record"
    assert len(_records(out)) == 12


async def test_stop_lets_in_flight_finish_within_the_grace_period(
    sim: Simulator, tmp_path: Path
) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(
        b"".join(orjson.dumps({"id": i, "prompt": f"q{i}"}) + b"\n" for i in range(200))
    )
    out = tmp_path / "out.jsonl"
    stop = anyio.Event()
    seen: list[BatchProgress] = []

    def progress(p: BatchProgress) -> None:
        seen.append(BatchProgress(**{k: getattr(p, k) for k in p.__slots__}))  # type: ignore[attr-defined]
        if p.succeeded >= 20:
            stop.set()

    opts = BatchOptions(progress_interval=0, grace_period=10)
    summary = await run_batch(_config(sim), inp, out, options=opts, progress=progress, stop=stop)
    assert summary.status == "interrupted" and summary.exit_code == 130
    recs = _records(out)
    assert 20 <= len(recs) < 200
    assert sim.stats.received == len(recs), "in-flight requests finished and were recorded"
    dones = [p.done for p in seen]
    assert dones == sorted(dones) and seen[-1].done == len(recs)
    assert seen[-1].pending == 200 - len(recs)
    summary = await run_batch(_config(sim), inp, out)
    assert summary.status == "done" and summary.progress.skipped == len(recs)
    ids = [r["custom_id"] for r in _records(out)]
    assert sorted(ids) == sorted(str(i) for i in range(200))


async def test_grace_period_over_cancels_in_flight_without_records(tmp_path: Path) -> None:
    async with Simulator(latency=30.0) as slow:
        inp = tmp_path / "in.jsonl"
        inp.write_bytes(b"".join(orjson.dumps({"prompt": f"q{i}"}) + b"\n" for i in range(50)))
        out = tmp_path / "out.jsonl"
        stop = anyio.Event()
        opts = BatchOptions(grace_period=0.2)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_set_later, stop, 0.3)
                summary = await run_batch(_config(slow), inp, out, options=opts, stop=stop)
        assert summary.status == "interrupted"
        assert out.read_bytes() == b"", "cancelled requests get no record"
        assert summary.progress.pending == 50 and summary.progress.in_flight == 0


async def _set_later(event: anyio.Event, delay: float) -> None:
    await anyio.sleep(delay)
    event.set()


def test_id_set_is_compact_and_exact() -> None:
    ids = IdSet()
    for i in range(70_000):  # more than one sorted run of 65,536
        ids.add(f"id-{i}")
    ids.freeze()
    assert all(f"id-{i}" in ids for i in range(0, 70_000, 7))
    assert "id-70000" not in ids and "id-x" not in ids and 5 not in ids
    assert len(ids) == 70_000
    assert ids._hashes.itemsize == 8, "8 bytes an id"
    exact = IdSet(exact=True)
    exact.add("a")
    assert "a" in exact and "b" not in exact


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from _redis import redis_server

    with redis_server(tmp_path_factory.mktemp("redis-batch")) as url:
        yield url


@pytest.mark.redis
async def test_a_redis_budget_is_shared_and_closed(
    sim: Simulator, tmp_path: Path, redis_url: str
) -> None:
    config = _config(sim)
    config["budget"] = {"usd": 0.05, "redis_url": redis_url}
    config["providers"]["sim"]["price"] = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}
    items = [{"custom_id": f"k{i}", "prompt": f"p{i}", "max_tokens": 4} for i in range(40)]
    out = tmp_path / "out.jsonl"
    summary = await run_batch(config, items, out)
    assert summary.status == "budget"
    recs = _records(out)
    assert 0 < len(recs) < 40 and all(r["error"] is None for r in recs)
    assert sum(r["asyncllm"]["cost_usd"] for r in recs) <= 0.05


async def test_a_callers_client_is_used_and_left_open(sim: Simulator, tmp_path: Path) -> None:
    from asyncllm import Client
    from asyncllm.batch import BatchObserver

    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"id": i, "prompt": f"q{i}"}) + b"\n" for i in range(20)))
    async with Client([_provider(sim)], observers=[BatchObserver()]) as client:
        summary = await run_batch(client, inp, tmp_path / "out.jsonl")
        assert summary.status == "done" and summary.progress.succeeded == 20
        recs = _records(tmp_path / "out.jsonl")
        assert all(r["asyncllm"]["attempts"] == 1 for r in recs)
        response = await client.complete("still open")
        assert response.text


def _provider(sim: Simulator) -> Any:
    from asyncllm.providers import resolve

    return resolve("openai_compatible:m1", name="sim", base_url=sim.openai_base_url)


async def test_every_progress_snapshot_counts_only_records_in_the_file(
    sim: Simulator, tmp_path: Path
) -> None:
    # Records are queued and written in bursts: a snapshot must never run ahead of the file.
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(
        b"".join(orjson.dumps({"custom_id": f"c{i}", "prompt": f"p{i}"}) + b"\n" for i in range(60))
    )
    out = tmp_path / "out.jsonl"
    seen: list[tuple[int, int]] = []

    def progress(p: BatchProgress) -> None:
        lines = len(out.read_bytes().splitlines()) if out.exists() else 0
        seen.append((p.succeeded + p.failed, lines))

    config = _config(sim)
    config["client"]["concurrency"] = 16
    opts = BatchOptions(progress_interval=0)
    summary = await run_batch(config, inp, out, options=opts, progress=progress)
    assert summary.status == "done" and len(_records(out)) == 60
    assert len(seen) > 2 and seen[-1] == (60, 60)
    assert all(done == lines for done, lines in seen), seen


async def test_the_summary_carries_answer_quality_per_provider(
    sim: Simulator, tmp_path: Path
) -> None:
    from asyncllm.testing import Fault

    sim.inject(Fault.truncated(), times=2)
    sim.inject(Fault.empty(), times=1)
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b"\n".join(orjson.dumps({"custom_id": f"q{i}", "prompt": f"p{i}"}) for i in range(6))
    )
    summary = await run_batch(_config(sim), src, tmp_path / "out.jsonl")
    (row,) = summary.quality
    assert (row["provider"], row["model"], row["answers"]) == ("sim", "m1", 6)
    assert row["length"] == 2 and row["empty"] == 1


async def test_a_budget_store_that_is_down_stops_at_once_without_waiting(
    tmp_path: Path,
) -> None:
    # A refusal while other requests are in flight waits for them (they may give back
    # reservations); a budget whose store is down does not: nothing will come back.
    import contextlib

    from asyncllm import BudgetUnavailable, Client
    from asyncllm.batch import BatchObserver

    class FlakyStore:
        def __init__(self) -> None:
            self.calls = 0

        @contextlib.asynccontextmanager
        async def _reserved(self) -> AsyncIterator[Any]:
            class R:
                def settle(self, cost_usd: float | None) -> None:
                    pass

            yield R()

        def reserve(self, request: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls > 4:
                raise BudgetUnavailable("shared", 0.01, "ConnectionError")
            return self._reserved()

    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"id": i, "prompt": f"q{i}"}) + b"\n" for i in range(20)))
    store = FlakyStore()
    # Slow answers: the first four are in flight when the store goes down.
    async with (
        Simulator(latency=0.3) as slow,
        Client([_provider(slow)], budget=store, observers=[BatchObserver()]) as client,
    ):
        with anyio.fail_after(10):
            summary = await run_batch(
                client, inp, tmp_path / "out.jsonl", options=BatchOptions(concurrency=8)
            )
    assert summary.status == "budget"
    assert summary.progress.succeeded == 4  # the four admitted answered and were recorded
    assert store.calls <= 8, "refused requests did not try again"


class _SlowRefusals:
    """A budget that refuses every request, the first after 10 ms, the second after 20 ms."""

    def __init__(self) -> None:
        self.calls = 0

    def reserve(self, request: Any, **kwargs: Any) -> Any:
        from contextlib import asynccontextmanager

        from asyncllm import BudgetExceeded

        self.calls += 1
        delay = 0.01 * self.calls

        @asynccontextmanager
        async def refuse() -> AsyncIterator[Any]:
            await anyio.sleep(delay)
            raise BudgetExceeded("tight", 1.0, 0.0)
            yield  # pragma: no cover

        return refuse()


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_refusal_with_nothing_else_in_flight_stops_even_an_ordered_run(
    tmp_path: Path, ordered: bool
) -> None:
    # Line 1 is refused while line 2 is in flight: it waits. Line 2 is then refused with
    # nothing else in flight: the budget is spent, the run must stop. In an ordered run
    # line 2's result is held behind line 1, so stopping cannot wait for its record (it
    # hung there).
    from asyncllm import Client
    from asyncllm.batch import BatchObserver
    from asyncllm.testing import FakeProvider

    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"id": i, "prompt": f"q{i}"}) + b"\n" for i in range(2)))
    async with Client(
        FakeProvider("f"), budget=_SlowRefusals(), observers=[BatchObserver()], log=False
    ) as client:
        with anyio.fail_after(5):
            summary = await run_batch(
                client, inp, tmp_path / "out.jsonl",
                options=BatchOptions(concurrency=2, ordered=ordered),
            )  # fmt: skip
    assert summary.status == "budget" and summary.progress.pending == 2
    assert not (tmp_path / "out.jsonl").exists() or _records(tmp_path / "out.jsonl") == []


async def test_refused_requests_wait_in_line_not_in_a_herd(tmp_path: Path) -> None:
    # Each end of an admitted request wakes one refused request, not all of them; a
    # refused try is not an attempt in the record.
    from asyncllm import Client, Usage
    from asyncllm.batch import BatchObserver
    from asyncllm.cost import MemoryBudget, ModelPrice, Prices
    from asyncllm.testing import FakeProvider, FakeReply

    prices = Prices({("fake", "fake-model"): ModelPrice(input_per_mtok=0, output_per_mtok=1000)})
    reply = FakeReply(tokens=("ok",), usage=Usage(10, 10), latency=0.01)
    budget = MemoryBudget(1.0, default_max_tokens=100)  # worst case $0.1, real cost $0.01
    calls = 0
    real = budget.reserve

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    budget.reserve = counting  # type: ignore[method-assign]
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(
        b"".join(orjson.dumps({"id": i, "prompt": f"q{i}"}) + b"\n" for i in range(400))
    )
    async with Client(
        FakeProvider("f", replies=[reply]), budget=budget, pricing=prices,
        observers=[BatchObserver()], log=False,
    ) as client:  # fmt: skip
        with anyio.fail_after(30):
            summary = await run_batch(
                client, inp, tmp_path / "out.jsonl", options=BatchOptions(concurrency=64)
            )
    recs = _records(tmp_path / "out.jsonl")
    answered = len(recs)
    assert summary.status == "budget" and 90 <= answered <= 100  # $1 at $0.01 each
    assert all(r["asyncllm"]["attempts"] == 1 for r in recs)
    assert calls <= 3 * answered + 64, (calls, answered)
