"""A CSV row is kept as the line it was read from and where that line starts in the file; its
record reaches it, a rerun finds it unchanged, and a quarantined row still shows its cells."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import psycopg

from domain.runs import RunStatus
from entrypoints.bootstrap import build
from entrypoints.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CROSSREF = REPO / "data" / "reference" / "asset_crossref.csv"
TEXT = (
    "\ufeffdate,symbol,close,note\r\n"
    "2024-01-01,BTC,42000.5,plain\r\n"
    '2024-01-02,BTC,42100,"two\r\nlines, and a comma"\r\n'
    "2024-01-03,BTC,-5,negative\r\n"
    "2024-01-04,BTC,42300,last line without a break"
)


def run(database_url: str, path: Path):  # type: ignore[no-untyped-def]
    app = build(Settings(csv_source_path=str(path), asset_crossref_path=CROSSREF), database_url)  # type: ignore[call-arg]
    try:
        return app.run_etl(["csv"])
    finally:
        app.close()


def test_each_row_is_kept_as_its_line_and_where_it_starts(clean_database: str, tmp_path: Path) -> None:
    path = tmp_path / "BTC-USD.csv"
    path.write_bytes(TEXT.encode("utf-8"))
    first = run(clean_database, path)
    assert first.status is RunStatus.SUCCESS, first.error
    with psycopg.connect(clean_database) as connection:
        kept = connection.execute(
            "SELECT r.line, r.line_offset, r.payload, u.price FROM raw_csv_lines r "
            "LEFT JOIN unified_data u ON u.raw_id = r.id ORDER BY r.line_offset"
        ).fetchall()
        quarantined = connection.execute("SELECT payload, reason FROM quarantine").fetchall()
        [batch] = connection.execute("SELECT lines, line_offsets FROM raw_csv_batches").fetchall()
    content = path.read_bytes()
    # the batch's lines one row, in the file's order (the quarantined one in its place)
    assert (batch[0], batch[1]) == ([line for line, *_ in kept], [offset for _, offset, *_ in kept])
    assert batch[1] == sorted(batch[1])
    rows = list(csv.reader(io.StringIO(TEXT.removeprefix("\ufeff"), newline="")))[1:]
    assert [line for line, *_ in kept] == [
        "2024-01-01,BTC,42000.5,plain",
        '2024-01-02,BTC,42100,"two\r\nlines, and a comma"',
        "2024-01-03,BTC,-5,negative",
        "2024-01-04,BTC,42300,last line without a break",
    ]
    for (line, offset, payload, price), cells in zip(kept, rows, strict=True):
        assert content[offset:].startswith(line.encode())  # where the file has it, byte for byte
        assert payload is None  # not re-encoded
        assert next(csv.reader(io.StringIO(line, newline=""))) == cells  # the very cells read
        assert price is None or str(price) == cells[2]  # the record reaches its own line
    # the negative close is quarantined, and the quarantine still shows its cells by name
    assert quarantined == [
        ({"date": "2024-01-03", "symbol": "BTC", "close": "-5", "note": "negative"}, quarantined[0][1])
    ]
    again = run(clean_database, path)
    sources = {item.source: item.counters for item in again.sources}
    assert (sources["csv:BTC-USD"].inserted, sources["csv:BTC-USD"].updated) == (0, 0)
