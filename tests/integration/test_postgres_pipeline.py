"""The CSV source end to end through the composition root, on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from adapters.postgres.health import PostgresHealthProbe
from adapters.postgres.migrations import migration_ids, yoyo_url
from domain.runs import RunStatus, RunTrigger
from entrypoints.bootstrap import MIGRATIONS_DIR, Kaspero, build, migrate, resolve_database_url
from entrypoints.settings import Settings
from tests.support.market_csv import HEADER, append_lines, market_lines, write_csv


def kaspero_for(database_url: str, csv_path: Path, **settings: object) -> Kaspero:
    return build(Settings(csv_source_path=str(csv_path), **settings), database_url)  # type: ignore[arg-type]


def table_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("raw_csv_lines", "unified_data", "quarantine", "checkpoints")
        }


def row_versions(database_url: str) -> list[tuple[int, str]]:
    """(id, xmin) of every unified row: xmin changes whenever a row is rewritten."""
    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT id, xmin::text FROM unified_data ORDER BY id").fetchall()


def counters(run, source: str = "csv:prices"):
    return next(item for item in run.sources if item.source == source).counters


def test_first_load_unchanged_rerun_and_append(clean_database: str, tmp_path: Path) -> None:
    lines = list(market_lines(100))
    path = write_csv(
        tmp_path / "prices.csv", [*lines[:200], "2023-02-01,BTC,Bitcoin,1,1,1,oops,1,1"], bom=True
    )
    kaspero = kaspero_for(clean_database, path, csv_batch_size=64)
    try:
        first = kaspero.run_etl(["csv"], RunTrigger.CLI)
        assert first.status is RunStatus.SUCCESS
        assert (counters(first).fetched, counters(first).inserted, counters(first).quarantined) == (
            201,
            200,
            1,
        )
        assert table_counts(clean_database) == {
            "raw_csv_lines": 201,
            "unified_data": 200,
            "quarantine": 1,
            "checkpoints": 1,
        }
        versions = row_versions(clean_database)

        second = kaspero.run_etl(["csv"], RunTrigger.CLI)
        assert counters(second).fetched == 0
        assert row_versions(clean_database) == versions  # nothing rewritten

        append_lines(path, lines[200:])
        third = kaspero.run_etl(["csv"], RunTrigger.CLI)
        assert (counters(third).fetched, counters(third).inserted, counters(third).updated) == (100, 100, 0)
        assert table_counts(clean_database)["unified_data"] == 300
        assert row_versions(clean_database)[:200] == versions  # old rows untouched

        write_csv(path, lines)  # rewritten from the top (the bad row is gone): same content, no rewrites
        fourth = kaspero.run_etl(["csv"], RunTrigger.CLI)
        assert (counters(fourth).fetched, counters(fourth).unchanged, counters(fourth).inserted) == (
            300,
            300,
            0,
        )
        assert table_counts(clean_database)["raw_csv_lines"] == 301
    finally:
        kaspero.close()


def test_a_changed_row_updates_its_record_and_keeps_lineage(clean_database: str, tmp_path: Path) -> None:
    lines = list(market_lines(3))
    path = write_csv(tmp_path / "prices.csv", lines)
    kaspero = kaspero_for(clean_database, path)
    try:
        first = kaspero.run_etl(["csv"])
        edited = lines[0].split(",")
        edited[6] = "12345.67"
        write_csv(path, [",".join(edited), *lines[1:]])
        second = kaspero.run_etl(["csv"])
        assert (counters(second).updated, counters(second).unchanged) == (1, 8)
        with psycopg.connect(clean_database) as connection:
            row = connection.execute(
                "SELECT u.price_usd, u.first_run_id, u.last_run_id, split_part(r.line, ',', 7) "
                "FROM unified_data u CROSS JOIN LATERAL raw_csv_line(u.raw_id) r WHERE u.source_record_id = %s",
                (f"{edited[1]}@{edited[0]}",),
            ).fetchone()
        assert row is not None
        assert (str(row[0]), row[1], row[2], row[3]) == ("12345.67", first.id, second.id, "12345.67")
    finally:
        kaspero.close()


def test_a_missing_csv_file_fails_that_source_and_is_recorded(clean_database: str, tmp_path: Path) -> None:
    kaspero = kaspero_for(clean_database, tmp_path / "absent.csv")
    try:
        run = kaspero.run_etl(["csv"])
    finally:
        kaspero.close()
    assert run.status is RunStatus.FAILED
    assert "cannot open" in (run.error or "")
    assert run.sources[0].status is RunStatus.FAILED


def test_migrations_are_idempotent_and_readiness_sees_them(database_url: str, pool: ConnectionPool) -> None:
    assert migrate(database_url) == []
    probe = PostgresHealthProbe(pool, migration_ids(MIGRATIONS_DIR))
    assert probe.database_reachable()
    assert probe.pending_migrations() == []
    assert PostgresHealthProbe(
        pool, [*migration_ids(MIGRATIONS_DIR), "9999.future"]
    ).pending_migrations() == ["9999.future"]


def test_an_unreachable_database_is_reported_not_raised(tmp_path: Path) -> None:
    url = f"postgresql://nobody:secret@/nowhere?host={tmp_path}&connect_timeout=1"
    with ConnectionPool(url, min_size=0, max_size=1, open=True) as pool:
        assert PostgresHealthProbe(pool, [], timeout=1).database_reachable() is False


def test_database_url_is_used_as_given_and_no_embedded_server_is_started(tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://u:p@db.example:5432/kaspero", data_dir=tmp_path / "data")  # type: ignore[arg-type]
    assert resolve_database_url(settings) == "postgresql://u:p@db.example:5432/kaspero"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5/db", "postgresql+psycopg://u:p@h:5/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/x",
            "postgresql+psycopg://postgres:@/postgres?host=/tmp/x",
        ),
    ],
)
def test_yoyo_gets_the_psycopg3_scheme(url: str, expected: str) -> None:
    assert yoyo_url(url) == expected


def test_a_renamed_csv_header_is_detected_and_its_column_still_loads(
    clean_database: str, tmp_path: Path
) -> None:
    lines = list(market_lines(4))
    path = write_csv(tmp_path / "prices.csv", lines)
    kaspero = kaspero_for(clean_database, path)
    try:
        kaspero.run_etl(["csv"])
        text = path.read_text().replace(",close,", ",closing_price_usd,", 1)
        path.write_text(text.replace("2023-01-04", "2023-01-05"))  # the last day moves: one new row per asset
        result = kaspero.run_etl(["csv"])
    finally:
        kaspero.close()
    counters = result.sources[0].counters
    assert (counters.inserted, counters.quarantined, counters.drift_findings) == (3, 0, 1)
    with psycopg.connect(clean_database) as connection:
        findings = connection.execute(
            "SELECT kind, field, candidate, auto_mapped FROM schema_drifts"
        ).fetchall()
        missing_close = connection.execute(
            "SELECT count(*) FROM unified_data WHERE price_usd IS NULL"
        ).fetchone()
    assert findings == [("renamed", "close", "closing_price_usd", True)]
    assert missing_close == (0,)


def fill_unified(database_url: str, rows: int) -> None:
    with psycopg.connect(database_url) as connection:
        run_id = connection.execute(
            "INSERT INTO etl_runs (trigger, status, started_at) VALUES ('cli', 'success', now()) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        connection.execute(
            "INSERT INTO unified_data (source_type, source, source_record_id, kind, title, symbol, price_usd,"
            " published_at, observed_at, raw_id, first_run_id, last_run_id, checksum)"
            " SELECT 'csv', 'csv:bench', 'r' || g, 'market', 'Coin ' || (g %% 500), 'C' || (g %% 500), g %% 1000,"
            "  timestamptz '2024-01-01' + g * interval '1 minute', timestamptz '2024-01-01' + g * interval '1 minute',"
            "  g, %(run)s, %(run)s, md5(g::text)"
            " FROM generate_series(1, %(rows)s) g",
            {"run": run_id, "rows": rows},
        )
        connection.execute("ANALYZE unified_data")


def test_a_large_unfiltered_total_is_the_planner_s_estimate_and_a_narrow_one_is_exact(
    clean_database: str, pool: ConnectionPool
) -> None:
    from adapters.postgres.reader import PostgresRecordReader
    from application.queries import DataQuery

    fill_unified(clean_database, 30_000)
    reader = PostgresRecordReader(pool)
    wide = reader.find(DataQuery(page=2))
    assert wide.total_is_estimate
    assert 25_000 <= wide.total_items <= 35_000
    narrow = reader.find(DataQuery(symbol="C7", page=2, page_size=10))
    assert (narrow.total_is_estimate, narrow.total_items) == (False, 60)


def test_first_and_deep_keyset_pages_are_index_range_scans(clean_database: str) -> None:
    fill_unified(clean_database, 30_000)
    with psycopg.connect(clean_database) as connection:
        plan = "\n".join(
            row[0]
            for row in connection.execute(
                "EXPLAIN SELECT * FROM unified_data WHERE published_at IS NOT NULL"
                " AND (published_at, id) < (timestamptz '2024-01-05', 5000)"
                " ORDER BY published_at DESC NULLS LAST, id DESC LIMIT 20"
            )
        )
    assert "Index Scan using unified_data_published_idx" in plan
    assert "Sort" not in plan
    with psycopg.connect(clean_database) as connection:
        first = "\n".join(
            row[0]
            for row in connection.execute(
                "EXPLAIN SELECT * FROM unified_data ORDER BY published_at DESC NULLS LAST, id DESC LIMIT 20"
            )
        )
    assert "Index Scan using unified_data_published_idx" in first
    assert "Sort" not in first


def test_a_row_carrying_a_nul_character_is_quarantined_and_the_rest_load(
    clean_database: str, tmp_path: Path
) -> None:
    path = tmp_path / "prices.csv"
    lines = list(market_lines(2))
    assert "Bitcoin" in lines[0]
    rows = [HEADER, lines[0].replace("Bitcoin", "Bit\x00coin"), *lines[1:]]
    path.write_bytes(("\n".join(rows) + "\n").encode())
    kaspero = kaspero_for(clean_database, path)
    try:
        run = kaspero.run_etl(["csv"], RunTrigger.CLI)
    finally:
        kaspero.close()
    assert run.status is RunStatus.SUCCESS
    assert (counters(run).fetched, counters(run).inserted, counters(run).quarantined) == (
        len(lines), len(lines) - 1, 1,
    )  # fmt: skip
    with psycopg.connect(clean_database) as connection:
        [(reason, name)] = connection.execute("SELECT reason, payload->>'name' FROM quarantine").fetchall()
    assert (
        reason
        == "row contains a NUL character (U+0000), which cannot be stored; kept with U+FFFD in its place"
    )
    assert name == "Bit\ufffdcoin"


def test_a_load_that_writes_much_of_a_table_refreshes_its_statistics_at_once(
    clean_database: str, tmp_path: Path
) -> None:
    """Right after a bulk load the planner would still believe the tables empty: the ETL runs
    ANALYZE on what it wrote, so the API's first plans are right."""
    path = write_csv(tmp_path / "prices.csv", list(market_lines(400)))
    with psycopg.connect(clean_database, autocommit=True) as connection:
        before = connection.execute(
            "SELECT coalesce(analyze_count, 0) FROM pg_stat_user_tables WHERE relname = 'unified_data'"
        ).fetchone()
    kaspero = kaspero_for(clean_database, path)
    try:
        kaspero.run_etl(["csv"])
    finally:
        kaspero.close()
    with psycopg.connect(clean_database, autocommit=True) as connection:
        after = connection.execute(
            "SELECT coalesce(analyze_count, 0) FROM pg_stat_user_tables WHERE relname = 'unified_data'"
        ).fetchone()
        estimated = connection.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'unified_data'"
        ).fetchone()
    assert after is not None
    assert before is not None
    assert after[0] > before[0]
    assert estimated is not None
    assert estimated[0] == 1200
