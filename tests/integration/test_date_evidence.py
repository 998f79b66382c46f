"""A file whose first rows leave its day/month order open is settled by its whole time column,
read as a column; where Arrow cannot read the file as the csv module does, row by row, to the same
evidence."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

import adapters.feeds.csv_file as csv_file
from adapters.feeds.csv_file import _data_start, column_date_evidence, row_date_evidence
from domain.csv_layout import LayoutRefused, detect_layout
from domain.csv_options import FileOptions
from domain.runs import RunStatus
from entrypoints.bootstrap import build
from entrypoints.settings import Settings

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
START = datetime(2025, 2, 11, tzinfo=UTC)  # the 13th comes 2,880 minutes in: past the 2,000-line head
MINUTES = 3 * 24 * 60


def minute_file(path: Path, day_first: bool, extra: bytes = b"") -> dict[datetime, str]:
    """Three days of one-minute bars dated `dd/mm/yyyy HH:MM` (or `mm/dd/yyyy HH:MM`), each close
    its minute's number, so a misread date shows as a close at the wrong time; `extra`, a line
    after the 2,500th bar (past the head)."""
    closes: dict[datetime, str] = {}
    lines = [b"Date,Open,High,Low,Close,Volume,Note"]
    for minute in range(MINUTES):
        moment = START + timedelta(minutes=minute)
        written = moment.strftime("%d/%m/%Y %H:%M" if day_first else "%m/%d/%Y %H:%M")
        close = f"{100 + minute / 1000:.3f}"
        closes[moment] = close
        lines.append(f"{written},{close},{close},{close},{close},1,x".encode())
        if minute == 2500 and extra:
            lines.append(extra)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return closes


def load(url: str, path: Path) -> None:
    app = build(Settings(csv_source_path=str(path), log_level="WARNING"), url)  # type: ignore[call-arg]
    try:
        run = app.run_etl(["csv"])
    finally:
        app.close()
    assert run.status is RunStatus.SUCCESS, run.error


def stored(url: str) -> dict[datetime, str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT observed_at, price::text FROM unified_data").fetchall()
    return {moment.astimezone(UTC): price for moment, price in rows}


@pytest.mark.parametrize("day_first", [True, False])
def test_an_order_the_head_leaves_open_is_settled_by_the_whole_column_read_as_a_column(
    clean_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, day_first: bool
) -> None:
    path = tmp_path / "AVAX-USD.csv"
    closes = minute_file(path, day_first)
    head = path.read_text().splitlines(keepends=True)[:2000]
    assert detect_layout(path.name, head).date_order_open  # the head alone cannot tell

    def refused(*_: object) -> None:
        raise AssertionError("read row by row")

    monkeypatch.setattr(csv_file, "row_date_evidence", refused)
    load(clean_database, path)
    assert stored(clean_database) == closes  # every bar at the minute the file means


def test_a_file_arrow_cannot_read_as_the_csv_module_does_is_judged_row_by_row(
    clean_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "AVAX-USD.csv"
    # a row with a cell too many: the csv module reads it, Arrow's reader refuses the block
    closes = minute_file(path, day_first=True, extra=b"20/03/2025 00:00,5,5,5,5,1,x,one too many")
    read: list[str] = []
    original = csv_file.row_date_evidence
    monkeypatch.setattr(csv_file, "row_date_evidence", lambda *args: read.append("rows") or original(*args))
    load(clean_database, path)
    assert read == ["rows"]
    found = stored(clean_database)
    assert {moment: found.get(moment) for moment in closes} == closes
    assert set(found) - set(closes) <= {datetime(2025, 3, 20, tzinfo=UTC)}  # the odd row, if kept, day-first


def real_files() -> list[Path]:
    return sorted(FIXTURES.rglob("*.csv"))


def test_both_readings_of_every_real_files_time_column_give_the_same_evidence() -> None:
    """Every CSV file the tests hold (real exports, and the messy ones): the column says what the
    rows say, and Arrow refuses a file only where the csv module reads a row of another width."""
    compared, with_dates = 0, 0
    for path in real_files():
        content = path.read_bytes()
        lines = content.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").splitlines(keepends=True)
        try:
            layout = detect_layout(path.name, lines[:2000])
        except LayoutRefused:
            try:  # a file naming no symbol: named by its option, as a user would
                layout = detect_layout(path.name, lines[:2000], FileOptions(symbol="BTC"))
            except LayoutRefused:
                continue
        handle = io.BytesIO(content)
        start = _data_start(handle, layout)
        by_rows = row_date_evidence(handle, layout)
        handle.seek(start)
        try:
            by_column = column_date_evidence(handle, layout)
        except pa.ArrowInvalid:
            handle.seek(start)
            text = (line.decode("utf-8", "replace") for line in handle)
            widths = {len(cells) for cells in csv.reader(text, delimiter=layout.delimiter) if cells}
            assert widths != {len(layout.header)}, path.name
            continue
        assert by_column == by_rows, path.name
        compared += 1
        with_dates += bool(by_rows.seen)
    assert compared >= 8
    assert with_dates >= 1  # Investing.com's export writes its days month first
