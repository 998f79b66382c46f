"""The ETL use case on the in-memory fakes: batching, idempotence, quarantine, resume, statuses."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory.sources import InMemoryMarketNormalizer, InMemorySourceReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from application.batches import normalize_batch
from application.ingest import run_etl
from application.pipeline import IngestOptions, SourcePipeline
from application.ports import Batch
from domain.records import RawRecord
from domain.runs import RunStatus, RunTrigger


def clock() -> datetime:
    return datetime(2024, 5, 1, tzinfo=UTC)


def coin(i: int, price: Any = "1.5") -> dict[str, Any]:
    return {"id": f"coin-{i}", "symbol": f"c{i}", "price": price, "at": "2024-05-01T00:00:00Z"}


def pipeline(name: str, pages: list[list[dict[str, Any]]], **kwargs: Any) -> SourcePipeline:
    return SourcePipeline(InMemorySourceReader(name, pages, **kwargs), InMemoryMarketNormalizer())


def run(store: InMemoryStore, *pipelines: SourcePipeline, fail_after: int | None = None):
    options = IngestOptions(fail_after=fail_after)
    return run_etl(list(pipelines), lambda: InMemoryUnitOfWork(store), clock, RunTrigger.MANUAL, options)


def counters(run, source: str):
    return next(item for item in run.sources if item.source == source).counters


def test_a_first_run_inserts_every_record_and_checkpoints_the_last_page() -> None:
    store = InMemoryStore()
    result = run(store, pipeline("api", [[coin(1), coin(2)], [coin(3)]]))
    assert result.status is RunStatus.SUCCESS
    assert (counters(result, "api").fetched, counters(result, "api").inserted) == (3, 3)
    assert len(store.state.records) == 3
    assert store.state.checkpoints["api"].cursor == {"next_page": 2}


def test_an_unchanged_rerun_counts_unchanged_and_writes_nothing() -> None:
    store = InMemoryStore()
    pages = [[coin(1), coin(2)]]
    run(store, pipeline("api", pages))
    before = {key: item.updated_at for key, item in store.state.records.items()}
    again = run(store, pipeline("api", pages))  # a snapshot source: the cursor restarts after the end
    assert (counters(again, "api").unchanged, counters(again, "api").inserted, counters(again, "api").updated) == (
        2, 0, 0,
    )  # fmt: skip
    assert {key: item.updated_at for key, item in store.state.records.items()} == before


def test_a_changed_record_is_updated_and_keeps_its_first_run() -> None:
    store = InMemoryStore()
    first = run(store, pipeline("api", [[coin(1)]]))
    second = run(store, pipeline("api", [[coin(1, price="2.5")]]))
    assert counters(second, "api").updated == 1
    stored = store.state.records[("api", "coin-1")]
    assert (stored.first_run_id, stored.last_run_id) == (first.id, second.id)
    assert str(stored.record.price_usd) == "2.5"


def test_a_malformed_record_is_quarantined_with_its_reason_and_the_batch_goes_on() -> None:
    store = InMemoryStore()
    result = run(store, pipeline("api", [[coin(1), coin(2, price="abc"), coin(3, price=None)]]))
    assert counters(result, "api").inserted == 1
    assert counters(result, "api").quarantined == 2
    reasons = sorted(item.reason for item in store.state.quarantine.values())
    assert reasons == ["not a number: 'abc'", "price: required value is missing"]
    # nothing lost: every payload, good or bad, is kept raw
    assert len(store.state.raws) == 3


def test_one_unavailable_source_makes_the_run_partial_and_the_others_go_on() -> None:
    store = InMemoryStore()
    result = run(store, pipeline("down", [[coin(1)]], unavailable=True), pipeline("up", [[coin(2)]]))
    assert result.status is RunStatus.PARTIAL
    assert result.error == "down: unreachable"
    statuses = {item.source: (item.status, item.error) for item in result.sources}
    assert statuses["down"] == (RunStatus.FAILED, "down: unreachable")
    assert statuses["up"][0] is RunStatus.SUCCESS
    assert ("up", "coin-2") in store.state.records


def test_an_injected_failure_loses_nothing_and_the_next_run_resumes_after_the_last_commit() -> None:
    store = InMemoryStore()
    pages = [[coin(1), coin(2)], [coin(3), coin(4)], [coin(5)]]
    failed = run(store, pipeline("api", pages), fail_after=3)
    assert failed.status is RunStatus.FAILED
    assert "failure injected after 3 records (the failure drill)" in (failed.error or "")
    assert set(store.state.records) == {("api", "coin-1"), ("api", "coin-2")}
    assert store.state.checkpoints["api"].cursor == {"next_page": 1}

    resumed_reader = InMemorySourceReader("api", pages)
    resumed = run(store, SourcePipeline(resumed_reader, InMemoryMarketNormalizer()))
    assert resumed.status is RunStatus.SUCCESS
    assert resumed_reader.reads == [1, 2]  # the committed page is not read again
    assert len(store.state.records) == 5


def test_within_a_batch_the_later_of_two_records_with_one_id_wins() -> None:
    raws = tuple(
        RawRecord.of(
            source="api", source_record_id="x", payload=coin(1, price=p), fetched_at=clock(), run_id=1
        )
        for p in ("1", "2")
    )
    records, quarantined = normalize_batch(Batch(raws, {}), InMemoryMarketNormalizer())
    assert [str(r.price_usd) for r in records] == ["2"]
    assert quarantined == []


prices = st.one_of(
    st.decimals(min_value=0, max_value=10**9, places=4).map(str), st.just("n/a"), st.just("oops")
)
payloads = st.lists(st.builds(coin, st.integers(min_value=0, max_value=20), prices), max_size=15)


@st.composite
def snapshots(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Pages of a snapshot: every id once, split at random places."""
    ids = draw(st.lists(st.integers(min_value=0, max_value=50), unique=True, max_size=20))
    items = [coin(i, draw(prices)) for i in ids]
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(items)), max_size=3)))
    bounds = [0, *cuts, len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=60, deadline=None)
@given(pages=snapshots())
def test_loading_the_same_data_twice_equals_loading_it_once(pages: list[list[dict[str, Any]]]) -> None:
    once, twice = InMemoryStore(), InMemoryStore()
    run(once, pipeline("api", pages))
    run(twice, pipeline("api", pages))
    second = run(twice, pipeline("api", pages))

    def content(store: InMemoryStore) -> tuple[Any, ...]:
        return (
            {key: item.record for key, item in store.state.records.items()},
            set(store.state.raws),
            set(store.state.quarantine),
        )

    assert content(once) == content(twice)
    assert counters(second, "api").inserted == counters(second, "api").updated == 0


@settings(max_examples=60, deadline=None)
@given(page=payloads)
def test_normalizing_is_deterministic(page: list[dict[str, Any]]) -> None:
    raws = tuple(
        RawRecord.of(source="api", source_record_id=str(p["id"]), payload=p, fetched_at=clock(), run_id=1)
        for p in page
    )
    first = normalize_batch(Batch(raws, {}), InMemoryMarketNormalizer())
    second = normalize_batch(Batch(raws, {}), InMemoryMarketNormalizer())
    assert first == second


def test_an_injected_failure_stops_the_run_and_later_sources_do_not_run() -> None:
    store = InMemoryStore()
    later = InMemorySourceReader("later", [[coin(9)]])
    result = run(
        store,
        pipeline("first", [[coin(1), coin(2)], [coin(3)]]),
        SourcePipeline(later, InMemoryMarketNormalizer()),
        fail_after=2,
    )
    assert result.status is RunStatus.FAILED
    assert result.error == "run stopped: first: failure injected after 2 records (the failure drill)"
    assert later.reads == []
    assert [(item.source, item.status) for item in result.sources] == [("first", RunStatus.FAILED)]


class _FailingOnSecondLoad(InMemoryUnitOfWork):
    """A store whose second batch write fails with `failure`."""

    loads = 0
    failure: Exception = RuntimeError("a value the store refuses")

    def __enter__(self):
        entered = super().__enter__()
        write_prepared = self.records.write_prepared

        def failing(*args: Any, **kwargs: Any):
            type(self).loads += 1
            if type(self).loads == 2:
                raise type(self).failure
            return write_prepared(*args, **kwargs)

        self.records.write_prepared = failing  # type: ignore[method-assign]
        return entered


def test_a_failed_write_fails_its_source_keeps_the_batches_before_it_and_the_pass_goes_on() -> None:
    store = InMemoryStore()
    pages = [[coin(1)], [coin(2)], [coin(3)], [coin(4)]]
    _FailingOnSecondLoad.loads = 0
    _FailingOnSecondLoad.failure = RuntimeError("a value the store refuses")
    after = InMemorySourceReader("later", [[coin(9)]])
    result = run_etl(
        [pipeline("api", pages), SourcePipeline(after, InMemoryMarketNormalizer())],
        lambda: _FailingOnSecondLoad(store), clock, RunTrigger.MANUAL,
    )  # fmt: skip
    assert result.status is RunStatus.PARTIAL  # closed, never left running
    statuses = {item.source: (item.status, item.error) for item in result.sources}
    assert statuses["api"] == (RunStatus.FAILED, "api: error: RuntimeError: a value the store refuses")
    assert statuses["later"][0] is RunStatus.SUCCESS  # the next source still ran
    assert ("api", "coin-1") in store.state.records
    assert ("api", "coin-2") not in store.state.records
    assert store.state.checkpoints["api"].cursor == {"next_page": 1}


def test_the_database_going_away_mid_write_ends_the_pass() -> None:
    from application.errors import StoreUnavailable

    store = InMemoryStore()
    _FailingOnSecondLoad.loads = 0
    _FailingOnSecondLoad.failure = StoreUnavailable("the database went away")
    with pytest.raises(StoreUnavailable, match="went away"):
        run_etl([pipeline("api", [[coin(1)], [coin(2)], [coin(3)]])], lambda: _FailingOnSecondLoad(store), clock,
                RunTrigger.MANUAL)  # fmt: skip
    assert set(store.state.records) == {("api", "coin-1")}
    assert _FailingOnSecondLoad.loads == 2  # nothing was written after the failed batch


def test_a_source_quarantining_half_of_what_it_read_has_failed() -> None:
    store = InMemoryStore()
    half = [[coin(1), {"id": "x1", "symbol": "zz"}], [coin(2), {"id": "x2", "symbol": "zz"}]]
    result = run_etl([pipeline("api", half)], lambda: InMemoryUnitOfWork(store), clock, RunTrigger.MANUAL)
    assert result.status is RunStatus.FAILED
    assert result.sources[0].error.startswith("api: 2 of 4 records read were quarantined; the first because")
    most = [[coin(1), coin(2), {"id": "x1", "symbol": "zz"}]]
    result = run_etl([pipeline("api", most)], lambda: InMemoryUnitOfWork(store), clock, RunTrigger.MANUAL)
    assert result.status is RunStatus.SUCCESS  # a third quarantined: still a success, with the rest stored


class _OneBatchReader(InMemorySourceReader):
    """Yields one fixed batch, whatever the cursor."""

    def __init__(self, batch: Batch) -> None:
        super().__init__("api", [])
        self.batch = batch

    def read(self, cursor: dict[str, Any] | None, run_id: int):
        yield self.batch


def test_a_record_holding_a_nul_character_is_quarantined_without_it_wherever_it_comes_from() -> None:
    from domain.records import QuarantinedRecord

    def raw(payload: dict[str, Any]) -> RawRecord:
        return RawRecord.of(source="api", source_record_id=str(payload.get("id", "bad")), payload=payload,
                            fetched_at=clock(), run_id=1)  # fmt: skip

    held = QuarantinedRecord(raw({"element": "bad\x00"}), "element is not an object with an id")
    good = (raw(coin(1)), raw(coin(3)), raw(coin(4)))  # more good than bad: the source succeeds
    batch = Batch((*good, raw({**coin(2), "symbol": "c\x002"})), {"next_page": 1}, (held,))
    store = InMemoryStore()
    result = run_etl(
        [SourcePipeline(_OneBatchReader(batch), InMemoryMarketNormalizer())],
        lambda: InMemoryUnitOfWork(store),
        clock,
        RunTrigger.MANUAL,
    )
    assert result.status is RunStatus.SUCCESS
    assert set(store.state.records) == {("api", "coin-1"), ("api", "coin-3"), ("api", "coin-4")}
    kept = {item.raw.source_record_id: item for item in store.state.quarantine.values()}
    assert kept["coin-2"].reason.startswith("contains a NUL character (U+0000)")
    assert kept["coin-2"].raw.payload["symbol"] == "c\ufffd2"
    assert kept["bad"].reason == "element is not an object with an id"  # its reader's reason stays
    assert kept["bad"].raw.payload == {"element": "bad\ufffd"}
    assert all("\\u0000" not in (item.raw.payload_json or "") for item in kept.values())


def test_files_quoted_in_another_asset_run_last_and_only_usd_files_may_run_side_by_side() -> None:
    from application.ingest import arrange
    from domain.records import Source, SourceType

    class Reader:
        def __init__(self, name: str, usd: bool | None) -> None:
            self.source = Source(name, SourceType.CSV if usd is not None else SourceType.API)
            if usd is not None:
                self.quoted_in_usd = lambda: usd

        def read(self, cursor, run_id):  # type: ignore[no-untyped-def]
            return iter(())

    pipelines = [
        SourcePipeline(Reader(name, usd), None)  # type: ignore[arg-type]
        for name, usd in (
            ("coingecko", None),
            ("csv:etc_btc", False),
            ("csv:btc_usd", True),
            ("csv:eth", True),
        )
    ]
    ordered, side_by_side = arrange(pipelines)
    assert [pipeline.name for pipeline in ordered] == ["coingecko", "csv:btc_usd", "csv:eth", "csv:etc_btc"]
    assert side_by_side == {"csv:btc_usd", "csv:eth"}
