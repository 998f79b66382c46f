"""One contract for the storage ports, checked against the in-memory fakes and PostgreSQL alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from adapters.memory.reader import InMemoryQuarantineReader, InMemoryRecordReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from adapters.postgres.quarantine import PostgresQuarantineReader
from adapters.postgres.reader import PostgresRecordReader
from adapters.postgres.uow import PostgresUnitOfWork
from application.browse import export_quarantined, export_records
from application.ports import QuarantineRecords, Records, UnitOfWork
from application.queries import DataQuery, QuarantineQuery, SortField, SortOrder
from domain.assets import Asset
from domain.checkpoints import Checkpoint
from domain.records import QuarantinedRecord, RawRecord, RecordKind, SourceType, UnifiedRecord
from domain.runs import RunStatus, RunTrigger, SourceCounters

NOW = datetime(2024, 3, 1, tzinfo=UTC)


@attrs.frozen
class Storage:
    uow: Callable[[], UnitOfWork]
    reader: Records
    quarantine: QuarantineRecords


@pytest.fixture(params=["memory", "postgres"])
def storage(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        store = InMemoryStore()
        return Storage(
            lambda: InMemoryUnitOfWork(store), InMemoryRecordReader(store), InMemoryQuarantineReader(store)
        )
    pool: ConnectionPool = request.getfixturevalue("pg_pool")
    return Storage(
        lambda: PostgresUnitOfWork(pool), PostgresRecordReader(pool), PostgresQuarantineReader(pool)
    )


def raw(record_id: str, source: str = "csv:prices", **payload: Any) -> RawRecord:
    return RawRecord.of(
        source=source,
        source_record_id=record_id,
        payload={"id": record_id, **payload},
        fetched_at=NOW,
        run_id=1,
    )


def market(item: RawRecord, **fields: Any) -> UnifiedRecord:
    defaults: dict[str, Any] = {
        "symbol": item.payload.get("symbol", "BTC"),
        "price_usd": Decimal(str(item.payload.get("price", "1"))),
        "published_at": NOW,
        "observed_at": NOW,
        "title": item.payload.get("title"),
    }
    return UnifiedRecord(
        source=item.source,
        source_type=SourceType.CSV,
        source_record_id=item.source_record_id,
        kind=RecordKind.MARKET,
        checksum=item.checksum,
        **(defaults | fields),
    )


def start_run(storage: Storage) -> int:
    with storage.uow() as uow:
        run_id = uow.runs.start(RunTrigger.CLI, NOW)
        uow.runs.start_source(run_id, "csv:prices", NOW)
        uow.commit()
    return run_id


def load(storage: Storage, run_id: int, raws: list[RawRecord], records=None, quarantined=()):
    """A batch written as the ETL writes it (`application.batches`): its raw payloads stored and
    committed, its rows encoded on that unit of work, then loaded in another one."""
    with storage.uow() as uow:
        receipt = uow.records.store_raws(run_id, [*raws, *(item.raw for item in quarantined)])
        uow.commit()
        encoded = uow.records.prepare_rows(
            receipt, [market(r) for r in raws] if records is None else records, list(quarantined)
        )
    with storage.uow() as uow:
        counts = uow.records.write_prepared(run_id, encoded)
        uow.commit()
    return counts


def test_a_batch_is_inserted_then_unchanged_then_updated(storage: Storage) -> None:
    run_id = start_run(storage)
    first = [raw("a", price="1.5"), raw("b", price="2")]
    counts = load(storage, run_id, first)
    assert (counts.inserted, counts.updated, counts.unchanged) == (2, 0, 0)
    counts = load(storage, run_id, first)
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 2)
    counts = load(storage, run_id, [raw("a", price="1.75"), raw("b", price="2"), raw("c", price="3")])
    assert (counts.inserted, counts.updated, counts.unchanged) == (1, 1, 1)
    page = storage.reader.find(DataQuery(sort_by=SortField.SYMBOL, page_size=10))
    assert sorted(str(item.record.price_usd) for item in page.items) == ["1.75", "2", "3"]


def test_every_stored_record_traces_back_to_its_raw_payload(storage: Storage) -> None:
    run_id = start_run(storage)
    load(storage, run_id, [raw("a", price="1")])
    load(storage, run_id, [raw("a", price="2")])
    [stored] = storage.reader.find(DataQuery()).items
    assert stored.record.checksum == raw("a", price="2").checksum
    assert stored.raw_id > 0
    assert stored.first_run_id == stored.last_run_id == run_id


def test_nothing_is_written_unless_the_unit_of_work_commits(storage: Storage) -> None:
    run_id = start_run(storage)
    with storage.uow() as uow:
        receipt = uow.records.store_raws(run_id, [raw("a")])
        uow.records.write_prepared(run_id, uow.records.prepare_rows(receipt, [market(raw("a"))], []))
        uow.checkpoints.save(Checkpoint("csv:prices", {"offset": 1}, run_id, NOW))
    with storage.uow() as uow:
        assert uow.checkpoints.get("csv:prices") is None
    assert storage.reader.find(DataQuery()).total_items == 0


def test_quarantined_records_keep_their_reason_once_per_content(storage: Storage) -> None:
    run_id = start_run(storage)
    bad = raw("x", price="oops")
    counts = load(
        storage, run_id, [bad, raw("a")], [market(raw("a"))], [QuarantinedRecord(bad, "price: bad")]
    )
    assert counts.quarantined == 1
    assert counts.inserted == 1
    again = load(storage, run_id, [bad], [], [QuarantinedRecord(bad, "price: bad")])
    assert again.quarantined == 1
    assert storage.reader.find(DataQuery()).total_items == 1


def test_checkpoints_are_saved_replaced_and_listed(storage: Storage) -> None:
    run_id = start_run(storage)
    with storage.uow() as uow:
        uow.checkpoints.save(Checkpoint("csv:b", {"offset": 1}, run_id, NOW))
        uow.checkpoints.save(Checkpoint("csv:a", {"offset": 2}, run_id, NOW))
        uow.checkpoints.save(Checkpoint("csv:a", {"offset": 3}, run_id, NOW + timedelta(seconds=1)))
        uow.commit()
    with storage.uow() as uow:
        assert uow.checkpoints.get("csv:a") == Checkpoint(
            "csv:a", {"offset": 3}, run_id, NOW + timedelta(seconds=1)
        )
        assert [cp.source for cp in uow.checkpoints.list()] == ["csv:a", "csv:b"]


def test_run_counters_add_up_across_batches(storage: Storage) -> None:
    run_id = start_run(storage)
    with storage.uow() as uow:
        uow.runs.add_counters(run_id, "csv:prices", SourceCounters(fetched=3, inserted=2, quarantined=1))
        uow.runs.add_counters(run_id, "csv:prices", SourceCounters(fetched=2, unchanged=2))
        uow.runs.finish_source(run_id, "csv:prices", RunStatus.SUCCESS, None, NOW, 42)
        uow.runs.finish(run_id, RunStatus.SUCCESS, None, NOW)
        uow.commit()
    with storage.uow() as uow:
        run = uow.runs.get(run_id)
        latest = uow.runs.latest()
    assert run is not None
    assert run == latest
    assert run.status is RunStatus.SUCCESS
    [source] = run.sources
    assert source.counters == SourceCounters(
        fetched=5, inserted=2, unchanged=2, quarantined=1, duration_ms=42
    )


def test_search_finds_articles_by_text_and_market_records_by_their_asset(storage: Storage) -> None:
    run_id = start_run(storage)
    with storage.uow() as uow:
        [bitcoin] = uow.assets.create([Asset(0, "BTC", "Bitcoin")])
        uow.commit()
    items = [
        raw("1", symbol="BTC", price="50000", title="Bitcoin (BTC)"),
        raw("2", symbol="ETH", price="3000", title="Ethereum (ETH)"),
        raw("3", symbol="X", title="Bitcoin rallies"),
        raw("4", symbol="X", title="Dogecoin 100% fun_coin"),
    ]
    records = [
        market(items[0], asset_id=bitcoin, published_at=NOW),
        market(items[1], published_at=NOW + timedelta(days=1)),  # no asset: not found by text
        attrs.evolve(
            market(items[2], published_at=NOW + timedelta(days=2)), kind=RecordKind.ARTICLE, symbol=None
        ),
        attrs.evolve(
            market(items[3], published_at=NOW + timedelta(days=3)), kind=RecordKind.ARTICLE, symbol=None
        ),
    ]
    load(storage, run_id, items, records)

    def ids(**query: Any) -> list[str]:
        return [item.record.source_record_id for item in storage.reader.find(DataQuery(**query)).items]

    assert ids(search="bitc") == ["3", "1"]  # an article by its title, a quote by its asset's name
    assert ids(search="btc") == ["1"]  # ...or its asset's symbol
    assert ids(search="ether") == []
    assert ids(search="100%") == ["4"]  # LIKE wildcards in a search are literal
    assert ids(search="o_e") == []


def test_the_reader_filters_sorts_and_pages_alike(storage: Storage) -> None:
    run_id = start_run(storage)
    items = [
        raw("1", symbol="BTC", price="50000", title="Bitcoin (BTC)"),
        raw("2", symbol="ETH", price="3000", title="Ethereum (ETH)"),
        raw("3", symbol="BTC", price="51000", title="Bitcoin (BTC)"),
        raw("4", symbol="DOGE", price="0.1", title="Dogecoin 100% fun_coin"),
    ]
    records = [
        market(item, published_at=NOW + timedelta(days=i), observed_at=NOW + timedelta(days=i))
        for i, item in enumerate(items)
    ]
    load(storage, run_id, items, records)

    def ids(**query: Any) -> list[str]:
        return [item.record.source_record_id for item in storage.reader.find(DataQuery(**query)).items]

    assert ids() == ["4", "3", "2", "1"]  # newest first by default
    assert ids(symbol="btc") == ["3", "1"]
    assert ids(sort_by=SortField.PRICE_USD, sort_order=SortOrder.ASC) == ["4", "2", "1", "3"]
    assert ids(start_date=NOW + timedelta(days=1), end_date=NOW + timedelta(days=2)) == ["3", "2"]
    assert ids(source_type=SourceType.API) == []
    second = storage.reader.find(DataQuery(page=2, page_size=3))
    assert [i.record.source_record_id for i in second.items] == ["1"]
    assert (second.total_items, second.total_pages) == (4, 2)
    first_id = storage.reader.find(DataQuery()).items[0].id
    fetched = storage.reader.get(first_id)
    assert fetched is not None
    assert fetched.record.source_record_id == "4"
    assert storage.reader.get(10**9) is None


def test_recent_runs_are_newest_first_and_filtered(storage: Storage) -> None:
    first = start_run(storage)
    with storage.uow() as uow:
        uow.runs.finish(first, RunStatus.FAILED, "csv:prices: gone", NOW)
        second = uow.runs.start(RunTrigger.SCHEDULE, NOW + timedelta(minutes=5))
        uow.runs.start_source(second, "coingecko", NOW)
        uow.runs.finish(second, RunStatus.SUCCESS, None, NOW + timedelta(minutes=6))
        uow.commit()
    with storage.uow() as uow:
        assert [run.id for run in uow.runs.recent(10)] == [second, first]
        assert [run.id for run in uow.runs.recent(1)] == [second]
        assert [run.id for run in uow.runs.recent(10, status=RunStatus.FAILED)] == [first]
        assert [run.id for run in uow.runs.recent(10, source="coingecko")] == [second]
        assert uow.runs.recent(10, source="nowhere") == []
        [failed] = uow.runs.recent(10, status=RunStatus.FAILED)
    assert failed.error == "csv:prices: gone"
    assert [item.source for item in failed.sources] == ["csv:prices"]


def test_source_stats_total_every_run_of_a_source(storage: Storage) -> None:
    for status, fetched, error in ((RunStatus.SUCCESS, 5, None), (RunStatus.FAILED, 2, "csv:prices: gone")):
        run_id = start_run(storage)
        with storage.uow() as uow:
            uow.runs.add_counters(run_id, "csv:prices", SourceCounters(fetched=fetched, inserted=fetched))
            uow.runs.finish_source(run_id, "csv:prices", status, error, NOW, 100 * fetched)
            uow.runs.finish(run_id, status, error, NOW)
            uow.commit()
    with storage.uow() as uow:
        [stats] = uow.runs.source_stats()
    assert (stats.source, stats.runs) == ("csv:prices", 2)
    assert (stats.totals.fetched, stats.totals.inserted, stats.totals.duration_ms) == (7, 7, 700)
    assert stats.last_success_at == NOW
    assert stats.last_failure_at == NOW
    assert stats.last_error == "csv:prices: gone"
    assert stats.average_duration_ms == 350
    assert stats.last_duration_ms == 200
    assert stats.runs_by_status == {"running": 0, "success": 1, "partial": 0, "failed": 1, "skipped": 0}


def test_drift_findings_are_kept_once_with_a_count(storage: Storage) -> None:
    from domain.drift import DriftFinding, DriftKind

    run_id = start_run(storage)
    renamed = DriftFinding(DriftKind.RENAMED, "close", "Closing", 0.9, True, "1.5", {"name_similarity": 0.87})
    added = DriftFinding(DriftKind.ADDED, "exchange", sample_value="Binance")
    with storage.uow() as uow:
        uow.drifts.record("csv:prices", run_id, [renamed, added], NOW)
        uow.drifts.record("csv:prices", run_id, [renamed], NOW + timedelta(minutes=1))
        uow.commit()
    with storage.uow() as uow:
        everything = uow.drifts.recent()
        renames = uow.drifts.recent(kind=DriftKind.RENAMED)
        later = uow.drifts.recent(since=NOW + timedelta(seconds=30))
        elsewhere = uow.drifts.recent(source="coingecko")
    assert [item.finding.kind for item in everything] == [DriftKind.RENAMED, DriftKind.ADDED]
    [kept] = renames
    assert (kept.seen_count, kept.first_seen, kept.last_seen) == (2, NOW, NOW + timedelta(minutes=1))
    assert kept.finding == renamed
    assert [item.finding.field for item in later] == ["close"]
    assert elsewhere == []


def test_run_requests_are_claimed_oldest_first_and_once(storage: Storage) -> None:
    with storage.uow() as uow:
        first = uow.requests.add(["csv"], NOW)
        second = uow.requests.add([], NOW + timedelta(seconds=1))
        uow.commit()
    with storage.uow() as uow:
        claimed = uow.requests.claim_next(NOW + timedelta(seconds=2))
        uow.commit()
    assert claimed is not None
    assert (claimed.id, claimed.sources, claimed.status.value) == (first.id, ("csv",), "running")
    run_id = start_run(storage)
    with storage.uow() as uow:
        uow.requests.complete(first.id, run_id, NOW + timedelta(seconds=3))
        again = uow.requests.claim_next(NOW + timedelta(seconds=4))
        empty = uow.requests.claim_next(NOW + timedelta(seconds=4))
        uow.commit()
    assert again is not None
    assert again.id == second.id
    assert empty is None
    with storage.uow() as uow:
        done = uow.requests.get(first.id)
    assert done is not None
    assert (done.status.value, done.run_id) == ("done", run_id)


def test_schedule_marks_remember_the_last_start(storage: Storage) -> None:
    with storage.uow() as uow:
        assert uow.schedule.last_started("csv") is None
        uow.schedule.mark_started("csv", NOW)
        uow.schedule.mark_started("csv", NOW + timedelta(minutes=5))
        uow.commit()
    with storage.uow() as uow:
        assert uow.schedule.last_started("csv") == NOW + timedelta(minutes=5)


def test_postgres_advisory_locks_exclude_each_other(clean_database) -> None:
    from adapters.postgres.scheduling import PostgresSourceLocks

    locks, other = PostgresSourceLocks(clean_database), PostgresSourceLocks(clean_database)
    try:
        with (
            locks.hold("kaspero:source:csv") as first,
            other.hold("kaspero:source:csv") as second,
            other.hold("kaspero:source:coingecko") as third,
            locks.hold("kaspero:source:csv") as again_in_process,
        ):
            assert (first, second, third, again_in_process) == (True, False, True, False)
        with other.hold("kaspero:source:csv") as after:
            assert after
    finally:
        locks.close()
        other.close()


def test_postgres_locks_use_one_session_whatever_the_number_held(clean_database) -> None:
    """Every lock of a process on one connection of its own: a run of many sources never
    takes connections from the pool its batches need."""
    from adapters.postgres.scheduling import PostgresSourceLocks

    locks = PostgresSourceLocks(clean_database)
    names = [f"kaspero:source:s{i}" for i in range(12)]
    try:
        with contextlib.ExitStack() as stack:
            taken = [stack.enter_context(locks.hold(name)) for name in names]
            with psycopg.connect(clean_database, autocommit=True) as probe:
                sessions = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kaspero-locks'"
                    " AND datname = current_database()"
                ).fetchone()
        assert all(taken)
        assert sessions == (1,)
    finally:
        locks.close()


def test_postgres_locks_survive_their_session_being_killed(clean_database) -> None:
    """A database restart kills the lock session: the next lock reconnects instead of failing."""
    from adapters.postgres.scheduling import PostgresSourceLocks

    locks = PostgresSourceLocks(clean_database)
    try:
        with locks.hold("kaspero:source:csv") as first:
            assert first
        with psycopg.connect(clean_database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'kaspero-locks' AND datname = current_database()"
            )
        with locks.hold("kaspero:source:csv") as again:
            assert again
    finally:
        locks.close()


def api_market(item: RawRecord) -> UnifiedRecord:
    return attrs.evolve(market(item), source_type=SourceType.API)


def test_observations_of_snapshot_sources_give_data_deltas_and_are_pruned(storage: Storage) -> None:
    first, second = start_run(storage), start_run(storage)
    before = [raw(str(i), source="coingecko", price=str(100 + i)) for i in range(5)]
    after = [
        raw(str(i), source="coingecko", price=str((100 + i) * (2 if i == 1 else 1))) for i in range(1, 7)
    ]
    for run_id, items in ((first, before), (second, after)):
        load(storage, run_id, items, [api_market(r) for r in items])
    with storage.uow() as uow:
        delta = uow.observations.observation_delta("coingecko", first, second, threshold_pct=10)
        csv_delta = uow.observations.observation_delta("csv:prices", first, second, threshold_pct=10)
    assert delta is not None
    assert (delta.in_a, delta.in_b, delta.added, delta.vanished, delta.compared) == (5, 6, 2, 1, 4)
    assert (delta.median_price_move_pct, delta.moved_over_threshold) == (0.0, 1)
    assert (delta.added_sample, delta.vanished_sample) == (("5", "6"), ("0",))
    assert csv_delta is None  # history files are not snapshots: nothing kept
    with storage.uow() as uow:
        uow.records.prune_observations("coingecko", keep_runs=1)
        uow.commit()
    with storage.uow() as uow:
        assert uow.observations.observation_delta("coingecko", first, second, threshold_pct=10) is None


SORTS = pytest.mark.parametrize(
    ("sort_by", "sort_order"),
    [
        (SortField.PUBLISHED_AT, SortOrder.DESC),
        (SortField.PRICE_USD, SortOrder.ASC),
        (SortField.RANK, SortOrder.DESC),
        (SortField.SYMBOL, SortOrder.ASC),
        (SortField.ID, SortOrder.DESC),
    ],
)


def _sortable_records(storage: Storage) -> None:
    """23 market records with missing values and ties in every sortable column."""
    run_id = start_run(storage)
    items = [raw(str(i), symbol=f"S{i % 4}", price=str(i % 5)) for i in range(23)]
    records = [
        market(
            item,
            rank=None if i % 3 == 0 else i % 7,  # missing values and ties: NULLS LAST, then by id
            published_at=NOW + timedelta(hours=i % 6),
            price_usd=None if i % 4 == 0 else Decimal(i % 5),
        )
        for i, item in enumerate(items)
    ]
    load(storage, run_id, items, records)


@SORTS
def test_keyset_pages_walk_the_same_order_as_offset_pages(
    storage: Storage, sort_by: SortField, sort_order: SortOrder
) -> None:
    _sortable_records(storage)
    by_offset = [
        item.id
        for page in range(1, 6)
        for item in storage.reader.find(
            DataQuery(sort_by=sort_by, sort_order=sort_order, page=page, page_size=5)
        ).items
    ]
    by_key: list[int] = []
    after = None
    for _ in range(10):
        page = storage.reader.find(
            DataQuery(sort_by=sort_by, sort_order=sort_order, page_size=5, after=after)
        )
        by_key += [item.id for item in page.items]
        after = page.next_after
        if after is None:
            break
    assert len(by_offset) == 23
    assert by_key == by_offset


def test_abandoned_runs_are_found_by_age_and_closed_with_their_sources(storage: Storage) -> None:
    old = start_run(storage)
    with storage.uow() as uow:
        young = uow.runs.start(RunTrigger.CLI, NOW + timedelta(hours=1))
        uow.commit()
    with storage.uow() as uow:
        assert uow.runs.running_since_before(NOW + timedelta(minutes=30)) == [old]
        uow.runs.abandon(old, "interrupted: gone", NOW + timedelta(minutes=31))
        uow.commit()
    with storage.uow() as uow:
        run = uow.runs.get(old)
        assert uow.runs.running_since_before(NOW + timedelta(hours=2)) == [young]
    assert run is not None
    assert (run.status, run.error) == (RunStatus.FAILED, "interrupted: gone")
    assert [(s.status, s.error) for s in run.sources] == [(RunStatus.FAILED, "interrupted: gone")]


def test_the_symbol_filter_finds_quotes_and_the_news_that_mentions_them(storage: Storage) -> None:
    run_id = start_run(storage)
    quote, news, other = raw("q", symbol="BTC"), raw("n", source="csv:prices"), raw("o")
    article = attrs.evolve(
        market(news), kind=RecordKind.ARTICLE, symbol=None, price_usd=None, mentions=("BTC", "ETH")
    )
    unrelated = attrs.evolve(
        market(other), kind=RecordKind.ARTICLE, symbol=None, price_usd=None, mentions=("SOL",)
    )
    load(storage, run_id, [quote, news, other], [market(quote), article, unrelated])
    found = storage.reader.find(DataQuery(symbol="btc")).items
    assert sorted(item.record.source_record_id for item in found) == ["n", "q"]
    [stored] = [item for item in found if item.record.source_record_id == "n"]
    assert stored.record.mentions == ("BTC", "ETH")


def test_tags_mentions_and_extra_round_trip_whatever_they_hold(storage: Storage) -> None:
    run_id = start_run(storage)
    awkward = ("plain", 'say "hi"', "back\\slash", "comma, brace {x}", "tab\there", "NULL", "", "ünï 🚀")
    item = raw("a", title="x")
    record = attrs.evolve(
        market(item),
        kind=RecordKind.ARTICLE,
        tags=awkward,
        mentions=("BTC", "ETH"),
        title="line one\nline two\ttabbed \\N not null",
        description="carriage\r\nreturn and a backslash \\ and \\.",
        asset_name="Ünïcode 🚀 \\x41",
        extra={"note": 'quote " and \\ and \n newline', "nested": {"n": [1, "2"]}, "big": 2**70, "f": 0.1},
    )
    load(storage, run_id, [item], [record])
    [stored] = storage.reader.find(DataQuery()).items
    assert stored.record.tags == awkward
    assert stored.record.mentions == ("BTC", "ETH")
    assert (stored.record.title, stored.record.description, stored.record.asset_name) == (
        "line one\nline two\ttabbed \\N not null",
        "carriage\r\nreturn and a backslash \\ and \\.",
        "Ünïcode 🚀 \\x41",
    )
    assert stored.record.extra == {
        "note": 'quote " and \\ and \n newline',
        "nested": {"n": [1, "2"]},
        "big": 2**70,
        "f": 0.1,
    }


def test_raws_stored_first_and_rows_encoded_in_one_unit_of_work_load_in_another(storage: Storage) -> None:
    run_id = start_run(storage)
    items = [raw("a", price="1"), raw("b", price="2")]
    bad = QuarantinedRecord(raw=raw("c", price="x"), reason="price: not a number: 'x'")
    with storage.uow() as uow:
        receipt = uow.records.store_raws(run_id, [*items, bad.raw])
        uow.commit()
        encoded = uow.records.prepare_rows(receipt, [market(item) for item in items], [bad])
    with storage.uow() as uow:
        assert storage.reader.find(DataQuery()).items == []  # raws alone are no records yet
        counts = uow.records.write_prepared(run_id, encoded)
        uow.commit()
    assert (counts.inserted, counts.quarantined) == (2, 1)
    found = storage.reader.find(DataQuery(sort_by=SortField.SYMBOL, page_size=10)).items
    assert sorted(item.record.checksum for item in found) == sorted(item.checksum for item in items)
    assert all(item.raw_id > 0 for item in found)


def test_asset_search_takes_its_text_literally(storage: Storage) -> None:
    """`/assets?search=` finds the text anywhere in a name, its `%`, `_` and `\\` as themselves."""
    with storage.uow() as uow:
        uow.assets.create(
            [Asset(0, "PCT", "100% Coin"), Asset(0, "THO", "1000 Coin"), Asset(0, "UND", "A_B Token"),
             Asset(0, "AXB", "AXB Token"), Asset(0, "BSL", "Back\\slash")]
        )  # fmt: skip
        uow.commit()
    with storage.uow() as uow:
        found = {
            text: [asset.name for asset in uow.assets.find(None, text, 1, 20).items]
            for text in ("100%", "a_b", "\\", "coin")
        }
    assert found == {
        "100%": ["100% Coin"],
        "a_b": ["A_B Token"],
        "\\": ["Back\\slash"],
        "coin": ["100% Coin", "1000 Coin"],
    }


def test_prices_the_sources_observed_give_medians_and_the_other_sources(storage: Storage) -> None:
    """Conversions and the check of a file against known prices read the same observations: the
    median of each source's last price in a bar (an observed price), never one outlier."""

    run_id = start_run(storage)
    with storage.uow() as uow:
        [asset_id] = uow.assets.create([Asset(0, "BTC", "Bitcoin")])
        uow.commit()
    day = datetime(2024, 1, 1, tzinfo=UTC)
    for source, price in (("csv:a", "100"), ("csv:b", "110"), ("csv:c", "500")):
        item = raw(f"BTC@{source}", source=source, price=price)
        observed = day + timedelta(hours=1)
        load(
            storage,
            run_id,
            [item],
            [market(item, asset_id=asset_id, observed_at=observed, bar_seconds=86400)],
        )
    with storage.uow() as uow:
        rate = uow.rates.usd_rates("BTC", [(day, 86400)])[(day, 86400)]
        others = uow.rates.other_sources([asset_id], "csv:a")
        references = uow.rates.reference_prices([(asset_id, day, 86400)], others)
        none = uow.rates.other_sources([asset_id + 1000], "csv:a")
    assert (rate.price_usd, rate.source) == (Decimal("110"), "csv:a,csv:b,csv:c")  # not 500, not the last
    assert others == {asset_id: ("csv:b", "csv:c")}
    assert references[(asset_id, day, 86400)].price_usd == Decimal("110")  # the lower middle of 110, 500
    assert references[(asset_id, day, 86400)].sources == ("csv:b", "csv:c")
    assert none == {}


def test_filters_of_several_values_match_any_of_them_alike(storage: Storage) -> None:
    run_id = start_run(storage)
    items = [raw(f"{symbol}-{source}", source=source, symbol=symbol) for symbol in ("BTC", "ETH", "SOL")
             for source in ("csv:a", "csv:b")]  # fmt: skip
    for source in ("csv:a", "csv:b"):
        own = [item for item in items if item.source == source]
        load(
            storage,
            run_id,
            own,
            [market(item, quote_currency="USDT" if source == "csv:b" else "USD") for item in own],
        )

    def found(**filters: Any) -> list[str]:
        page = storage.reader.find(DataQuery(page_size=100, **filters))
        return sorted(item.record.source_record_id for item in page.items)

    assert found(symbol=("btc", "SOL")) == ["BTC-csv:a", "BTC-csv:b", "SOL-csv:a", "SOL-csv:b"]
    assert found(symbol="ETH", source=("csv:b", "csv:z")) == ["ETH-csv:b"]
    assert found(quote_currency=("USDT",), symbol=("ETH", "SOL")) == ["ETH-csv:b", "SOL-csv:b"]
    assert found(source=()) == sorted(item.source_record_id for item in items)


@SORTS
def test_exports_walk_every_match_in_the_pages_order_a_batch_at_a_time(
    storage: Storage, sort_by: SortField, sort_order: SortOrder
) -> None:
    _sortable_records(storage)
    pages = [
        item.id
        for page in range(1, 4)
        for item in storage.reader.find(
            DataQuery(sort_by=sort_by, sort_order=sort_order, page=page, page_size=10)
        ).items
    ]
    query = DataQuery(sort_by=sort_by, sort_order=sort_order)
    for batch in (1, 4, 23, 50):  # batches dividing the total or not, one bigger than it
        assert [item.id for item in export_records(storage.reader, query, batch=batch)] == pages
    filtered = DataQuery(sort_by=sort_by, sort_order=sort_order, symbol=("S1", "s2"), page=3, page_size=1)
    exported = list(export_records(storage.reader, filtered, batch=3))  # the page is not the export's
    assert [item.id for item in exported] == [
        item.id for item in storage.reader.find(attrs.evolve(filtered, page=1, page_size=100)).items
    ]
    assert len(exported) == 12


def test_quarantine_exports_walk_every_match_newest_first_a_batch_at_a_time(storage: Storage) -> None:
    run_id = start_run(storage)
    bad = [raw(f"q{i}", source=f"csv:{'a' if i % 3 else 'b'}", price=f"oops{i}") for i in range(11)]
    for source in ("csv:a", "csv:b"):  # a batch holds one source
        own = [(i, item) for i, item in enumerate(bad) if item.source == source]
        load(storage, run_id, [item for _, item in own], [],
             [QuarantinedRecord(item, f"price: bad {i % 2}") for i, item in own])  # fmt: skip
    paged = [item.id for item in storage.quarantine.find(QuarantineQuery(page_size=100)).items]
    assert len(paged) == 11
    assert paged == sorted(paged, reverse=True)
    for batch in (1, 4, 11, 50):
        assert [
            item.id for item in export_quarantined(storage.quarantine, QuarantineQuery(), batch=batch)
        ] == paged
    only = QuarantineQuery(
        source="csv:a", reason="BAD 1", page=2, page_size=1
    )  # the page is not the export's
    expected = storage.quarantine.find(attrs.evolve(only, page=1, page_size=100)).items
    assert [item.id for item in export_quarantined(storage.quarantine, only, batch=2)] == [
        item.id for item in expected
    ]
    assert len(expected) == 3  # csv:a holds q1, q5 and q7 of the odd reasons


def test_a_quarantined_payload_that_loads_leaves_the_quarantine_and_replays_skip_newer_records(
    storage: Storage,
) -> None:
    backlog = storage.quarantine
    run_id = start_run(storage)
    # quarantined under a rule since changed (a bound, an option): their payloads are fine now
    first, second = raw("a", price="1"), raw("b", price="2")
    load(storage, run_id, [first, second], [], [
        QuarantinedRecord(raw=first, reason="price_usd 1 above PLAUSIBLE_MAX_PRICE_USD (x)"),
        QuarantinedRecord(raw=second, reason="price_usd 2 above PLAUSIBLE_MAX_PRICE_USD (y)"),
    ])  # fmt: skip
    entries = backlog.replayable("csv:prices", None, 0, 10)
    assert [entry.source_record_id for _, entry in entries] == ["a", "b"]
    assert [entry.checksum for _, entry in entries] == [first.checksum, second.checksum]
    assert [e.source_record_id for _, e in backlog.replayable("csv:prices", "(X)", 0, 10)] == ["a"]
    assert backlog.replayable("csv:prices", None, entries[0][0], 10)[0][1].source_record_id == "b"
    # the same content of `a` loads now (as a replay would store it): its entry leaves
    later = start_run(storage)
    load(storage, later, [first])
    assert [item.source_record_id for item in storage.quarantine.find(QuarantineQuery()).items] == ["b"]
    # a newer version of `b` stored by a later run: its older quarantined payload is not replayed
    newer = raw("b", price="3")
    load(storage, start_run(storage), [newer])
    assert backlog.replayable("csv:prices", None, 0, 10) == []
