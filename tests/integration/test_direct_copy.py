"""A batch of new keys is COPYed straight into its tables; one that meets a stored key (a replay
after a crash, a changed record, a bar met twice) takes the staging-and-upsert path, to the same
result. Which path a batch took is read from the transaction's own table statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from psycopg_pool import ConnectionPool

from adapters.postgres.uow import PostgresUnitOfWork
from application.ports import LoadCounts
from domain.records import RawRecord, RecordKind, SourceType, UnifiedRecord
from domain.runs import RunTrigger

NOW = datetime(2024, 3, 1, tzinfo=UTC)
STAGED = """
SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_xact_all_tables
WHERE relname IN ('staging_raw', 'staging_unified')
"""


def raw(record_id: str, price: str) -> RawRecord:
    payload = {"id": record_id, "close": price}
    return RawRecord.of(
        source="csv:bars", source_record_id=record_id, payload=payload, fetched_at=NOW, run_id=1
    )


def bar(item: RawRecord, asset_id: int, minute: int) -> UnifiedRecord:
    return UnifiedRecord(
        source="csv:bars",
        source_type=SourceType.CSV,
        source_record_id=item.source_record_id,
        kind=RecordKind.MARKET,
        checksum=item.checksum,
        symbol="BTC",
        price_usd=Decimal(item.payload["close"]),
        observed_at=NOW + timedelta(minutes=minute),
        published_at=NOW + timedelta(minutes=minute),
        asset_id=asset_id,
    )


def load(
    pool: ConnectionPool, run_id: int, raws: list[RawRecord], records: list[UnifiedRecord]
) -> tuple[LoadCounts, int]:
    """The batch as the ETL loads it (raws first, then the rows), and the rows staged for it."""
    with PostgresUnitOfWork(pool) as uow:
        # the backend's counts not yet flushed (PostgreSQL holds them up to a second) may carry
        # an earlier transaction's on this pooled connection: counted before, taken off after
        before = uow._connection.execute(STAGED).fetchone()[0]  # type: ignore[union-attr, index]
        receipt = uow.records.store_raws(run_id, raws)
        encoded = uow.records.prepare_rows(receipt, records, [])
        counts = uow.records.write_prepared(run_id, encoded)
        staged = uow._connection.execute(STAGED).fetchone()[0] - before  # type: ignore[union-attr, index]
        uow.commit()
    return counts, int(staged)


def run_and_asset(pool: ConnectionPool) -> tuple[int, int]:
    """A run to load in, and the asset the bars are of."""
    with PostgresUnitOfWork(pool) as uow:
        run_id = uow.runs.start(RunTrigger.CLI, NOW)
        uow.commit()
    with pool.connection() as connection:
        row = connection.execute(
            "INSERT INTO assets (symbol, name) VALUES ('BTC', 'Bitcoin') RETURNING id"
        ).fetchone()
    assert row is not None
    return run_id, int(row[0])


def scalar(pool: ConnectionPool, query: str) -> object:
    with pool.connection() as connection:
        row = connection.execute(query).fetchone()
    return row[0] if row else None


def test_new_keys_go_straight_in_and_met_keys_through_staging_to_the_same_rows(
    pg_pool: ConnectionPool,
) -> None:
    run_id, asset = run_and_asset(pg_pool)
    raws = [raw(f"r{i}", str(100 + i)) for i in range(50)]
    records = [bar(item, asset, i) for i, item in enumerate(raws)]

    counts, staged = load(pg_pool, run_id, raws, records)
    assert (counts.inserted, staged) == (50, 0)  # a first load: nothing staged

    # replayed (its raws stored, as after a crash between the two halves): through staging, no change
    counts, staged = load(pg_pool, run_id, raws, records)
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 50)
    assert staged > 0

    # one changed record among new ones: the batch is staged, the change is an update
    changed = raw("r3", "999")
    fresh = [raw(f"n{i}", str(200 + i)) for i in range(5)]
    batch = [changed, *fresh]
    counts, staged = load(
        pg_pool,
        run_id,
        batch,
        [bar(changed, asset, 3), *(bar(item, asset, 100 + i) for i, item in enumerate(fresh))],
    )
    assert (counts.inserted, counts.updated) == (5, 1)
    assert staged > 0

    # two new records of one bar (same asset, source and minute): both records go straight in,
    # the history shows the first as the bar and the candles count it once
    twins = [raw("t1", "300"), raw("t2", "301")]
    counts, staged = load(pg_pool, run_id, twins, [bar(item, asset, 500) for item in twins])
    assert (counts.inserted, staged) == (2, 0)

    assert scalar(pg_pool, "SELECT count(*) FROM unified_data") == 50 + 5 + 2
    assert scalar(pg_pool, "SELECT count(*) FROM market_history") == 50 + 5 + 1
    assert scalar(pg_pool, "SELECT sum(bars) FROM market_candles WHERE seconds = 86400") == 50 + 5 + 1
    # every unified row reaches the raw row of its own content
    assert (
        scalar(
            pg_pool,
            "SELECT count(*) FROM unified_data u JOIN raw_csv r ON r.id = u.raw_id "
            "AND (r.source, r.source_record_id, r.checksum) = (u.source, u.source_record_id, u.checksum)",
        )
        == 57
    )
    assert scalar(pg_pool, "SELECT count(*) FROM raw_csv") == 50 + 1 + 5 + 2


def test_a_direct_batch_met_by_the_batch_before_it_falls_back_whole(pg_pool: ConnectionPool) -> None:
    """Batch two is prepared while batch one is written: it may carry a key batch one has just
    stored. Its COPY fails on that key, and the whole batch is upserted instead."""
    run_id, asset = run_and_asset(pg_pool)
    first = [raw(f"r{i}", "1") for i in range(10)]
    second = [raw("r9", "2"), raw("r10", "3")]
    with PostgresUnitOfWork(pg_pool) as prepare_one, PostgresUnitOfWork(pg_pool) as prepare_two:
        receipt = prepare_one.records.store_raws(run_id, first)
        one = prepare_one.records.prepare_rows(
            receipt, [bar(item, asset, i) for i, item in enumerate(first)], []
        )
        prepare_one.commit()
        receipt = prepare_two.records.store_raws(
            run_id, second
        )  # a new content of r9, and r10: raws both new
        two = prepare_two.records.prepare_rows(
            receipt, [bar(second[0], asset, 9), bar(second[1], asset, 10)], []
        )
        prepare_two.commit()
    with PostgresUnitOfWork(pg_pool) as uow:
        assert uow.records.write_prepared(run_id, one).inserted == 10
        uow.commit()
    with PostgresUnitOfWork(pg_pool) as uow:
        counts = uow.records.write_prepared(run_id, two)
        uow.commit()
    assert (counts.inserted, counts.updated) == (1, 1)
    assert scalar(pg_pool, "SELECT price_usd FROM unified_data WHERE source_record_id = 'r9'") == Decimal(2)
    assert scalar(pg_pool, "SELECT count(*) FROM unified_data") == 11
