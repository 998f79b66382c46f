"""A CSV batch's lines are stored once, as one row: each record still reaches its own line by its
`raw_id`, the lines stored before migration 0020 (a row each) keep their ids, and the migration
rolls back to a row per line without losing one."""

from __future__ import annotations

from pathlib import Path

import psycopg

from domain.runs import RunStatus
from entrypoints.bootstrap import build, migrate
from entrypoints.settings import Settings
from tests.support.schema import roll_back

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "csv"
BATCH = 1 << 20  # a batch row's lines are numbered from its id (migration 0020)

# each record with the line its raw id names, and where that line starts in the file
LINEAGE = """
SELECT u.source, u.source_record_id, u.raw_id, r.line, r.line_offset
FROM unified_data u {raw}
WHERE u.source_type = 'csv' ORDER BY u.raw_id
"""
BY_FUNCTION = "LEFT JOIN LATERAL raw_csv_line(u.raw_id) r ON true"  # one probe a record
BY_VIEW = "LEFT JOIN raw_csv_lines r ON r.id = u.raw_id"  # every line listed, then joined
BY_TABLE = "LEFT JOIN raw_csv r ON r.id = u.raw_id"  # before migration 0020


def load(url: str, path: Path, batch_size: int, columnar: bool = True) -> None:
    settings = Settings(
        csv_source_path=str(path), csv_batch_size=batch_size, csv_columnar=columnar, log_level="WARNING"
    )  # type: ignore[call-arg]
    app = build(settings, url)
    try:
        run = app.run_etl(["csv"])
    finally:
        app.close()
    assert run.status is RunStatus.SUCCESS, run.error


def lineage(url: str, raw: str = BY_FUNCTION) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(LINEAGE.format(raw=raw)).fetchall()


def assert_each_record_reaches_its_line(found: list[tuple], files: dict[str, bytes]) -> None:
    """Every record's raw id names a line, the file's own bytes at its offset, holding the day the
    record observes."""
    assert found
    for source, record_id, raw_id, line, offset in found:
        assert line is not None, (source, record_id, raw_id)
        content = files[source]
        assert content[offset : offset + len(line.encode())] == line.encode()
        assert content[offset + len(line.encode()) : offset + len(line.encode()) + 1] in (b"\r", b"\n", b"")
        assert record_id.partition("@")[2][:10] in line  # the day it observes


def test_a_batch_is_one_row_and_each_record_reaches_its_line_in_it(database: str, tmp_path: Path) -> None:
    migrate(database)
    path = tmp_path / "BTC-USD.csv"  # Yahoo Finance's export
    path.write_bytes((FIXTURES / path.name).read_bytes())
    load(database, path, batch_size=7)
    with psycopg.connect(database) as connection:
        batches = connection.execute(
            "SELECT id, cardinality(lines), run_id FROM raw_csv_batches ORDER BY id"
        ).fetchall()
        per_line = connection.execute("SELECT count(*) FROM raw_csv").fetchone()
    found = lineage(database)
    assert per_line == (0,)  # no row per line
    lines = sum(count for _, count, _ in batches)
    assert len(batches) == -(-lines // 7)  # a row per batch of 7 lines
    assert lines == len(found)
    assert all(batch % BATCH == 0 for batch, _, _ in batches)  # its lines numbered from its id
    assert {raw_id - raw_id % BATCH for *_, raw_id, _, _ in found} == {batch for batch, _, _ in batches}
    assert_each_record_reaches_its_line(found, {"csv:BTC-USD": path.read_bytes()})

    # read again from the start, every record rewritten (a full refresh): no line stored twice
    settings = Settings(csv_source_path=str(path), csv_batch_size=7, log_level="WARNING")  # type: ignore[call-arg]
    app = build(settings, database)
    try:
        again = app.run_etl(["csv"], full_refresh=True)
    finally:
        app.close()
    assert again.status is RunStatus.SUCCESS, again.error
    with psycopg.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM raw_csv_batches").fetchone() == (len(batches),)
    assert lineage(database) == found


def test_lines_stored_a_row_each_keep_their_ids_across_the_migration_and_its_rollback(
    database: str, tmp_path: Path
) -> None:
    """Lines stored as rows of their own (the shape before migration 0020, which its rollback
    writes back) stay each record's lineage, and the batches numbered after them never reuse an
    id."""
    migrate(database)
    first, second = tmp_path / "BTC-USD.csv", tmp_path / "Binance_BTCUSDT_d.csv"
    first.write_bytes((FIXTURES / first.name).read_bytes())
    files = {"csv:BTC-USD": first.read_bytes()}
    load(database, first, batch_size=5, columnar=False)
    stored = lineage(database)

    roll_back(database, "0020.raw-csv-batches")  # each line a row of raw_csv, with its record's content key
    assert lineage(database, BY_TABLE) == stored
    with psycopg.connect(database) as connection:
        keyed = connection.execute(
            "SELECT count(*) FROM unified_data u JOIN raw_csv r ON r.id = u.raw_id "
            "AND (r.source, r.source_record_id, r.checksum) = (u.source, u.source_record_id, u.checksum)"
        ).fetchone()
    assert keyed == (len(stored),)

    migrate(database)  # forward again: the rows stay, a view shows them with the batches
    assert lineage(database) == stored
    assert lineage(database, BY_VIEW) == stored
    second.write_bytes((FIXTURES / second.name).read_bytes())
    files[f"csv:{second.stem}"] = second.read_bytes()
    load(database, tmp_path / "*.csv", batch_size=5)
    after = lineage(database)
    assert lineage(database, BY_VIEW) == after  # the view lists what the function finds
    assert [row for row in after if row[0] == "csv:BTC-USD"] == stored  # untouched
    new = [row for row in after if row[0] != "csv:BTC-USD"]
    assert new
    assert min(raw_id for _, _, raw_id, _, _ in new) > max(raw_id for _, _, raw_id, _, _ in stored)
    assert len({raw_id for _, _, raw_id, _, _ in after}) == len(after)  # no id names two lines
    assert_each_record_reaches_its_line(after, files)


def test_a_records_line_is_found_by_one_probe_of_its_batchs_key(database: str, tmp_path: Path) -> None:
    """`raw_csv_line` is what a lineage join uses: its plan reads the batch by its key (the view,
    listing every line, cannot be searched by a computed id)."""
    migrate(database)
    path = tmp_path / "BTC-USD.csv"
    path.write_bytes((FIXTURES / path.name).read_bytes())
    load(database, path, batch_size=5)
    lookup = "SELECT r.line FROM unified_data u CROSS JOIN LATERAL raw_csv_line(u.raw_id) r WHERE u.id = %s"
    with psycopg.connect(database) as connection:
        record = connection.execute("SELECT max(id) FROM unified_data").fetchone()
        connection.execute("SET enable_seqscan = off")  # a table this small is read whole anyway
        plan = str(connection.execute("EXPLAIN (FORMAT JSON) " + lookup, record).fetchone())
        line = connection.execute(lookup, record).fetchone()
    assert "raw_csv_batches_pkey" in plan
    assert "Function Scan" not in plan  # inlined into the query, not run as a black box
    assert line is not None
    assert path.read_text().splitlines().count(line[0]) == 1


def test_a_file_read_again_stores_none_of_its_lines_twice_not_even_a_quarantined_one(
    database: str, tmp_path: Path
) -> None:
    """Read again from its start (its checkpoint lost): its stored records are found unchanged,
    and a row quarantined the first time is quarantined again, pointing at the line it was first
    stored as, by columns and by rows."""
    migrate(database)
    path = tmp_path / "BTC-USD.csv"
    lines = (FIXTURES / path.name).read_text().splitlines()
    cells = lines[10].split(",")  # Yahoo's Date,Open,High,Low,Close,Adj Close,Volume
    lines[10] = ",".join([*cells[:4], "-" + cells[4], *cells[5:]])  # a negative close: quarantined
    path.write_text("\n".join(lines) + "\n")
    for columnar in (True, False):
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute("TRUNCATE raw_csv_batches, raw_csv, unified_data, quarantine, checkpoints")
        load(database, path, batch_size=4, columnar=columnar)
        with psycopg.connect(database) as connection:
            first = connection.execute("SELECT id, line FROM raw_csv_lines ORDER BY id").fetchall()
            entry = connection.execute("SELECT source_record_id, raw_id FROM quarantine").fetchall()
        assert len(first) == len(lines) - 1  # every data line once, the quarantined one too
        [(_, raw_id)] = entry
        assert dict(first)[raw_id] == lines[10]
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute("DELETE FROM checkpoints")
        load(database, path, batch_size=4, columnar=columnar)
        with psycopg.connect(database) as connection:
            assert connection.execute("SELECT id, line FROM raw_csv_lines ORDER BY id").fetchall() == first
            assert connection.execute("SELECT source_record_id, raw_id FROM quarantine").fetchall() == entry
