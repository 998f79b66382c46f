"""The columnar path stores what the row path stores, value for value, on real files.

Each file is loaded twice, into two databases: row by row (`CSV_COLUMNAR=false`) and by columns
(the default); every table a load writes is then read back from both and compared whole: the
records with their lineage and checksums, the raw lines and their offsets, the history, the
assets and their aliases, the quarantine with its reasons, the run's counters. Where the
columnar path hands a batch to the row path (a messy file, prices other sources know, a figure
out of bounds, records already stored), the result is the same by construction, and checked
the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.feeds.csv_file import CsvFileSource
from adapters.postgres.admin import create_database, drop_database
from application import batches
from domain.runs import RunTrigger
from entrypoints.bootstrap import build, migrate
from entrypoints.settings import Settings
from tests.conftest import TABLES
from tests.support.market_csv import HEADER, append_lines, market_lines, write_csv

FIXTURES = Path(__file__).parents[1] / "fixtures"
REAL_FILES = sorted((FIXTURES / "csv").glob("*.csv"))
# real files whose every batch the columnar path reads (the others go row by row, and must still
# come out the same): a test fails when a change sends one of them back to the row path
READ_AS_COLUMNS = {
    "AVAXUSDT-1m-2025-02.csv",  # Binance klines: no header, quote and base volumes, trades
    "BITSTAMP_BTCUSD, 1D.csv",  # TradingView: 28 indicator columns kept in `extra`
    "BTC-USD.csv",  # Yahoo Finance: `Adj Close` kept
    "Binance_BTCUSDT_d.csv",  # CryptoDataDownload: a banner line, unix and date, BTC/USDT
    "XBTUSD_1440.csv",  # Kraken OHLCVT: no header, epoch seconds
    "btc-usd-max.csv",  # CoinGecko: `snapped_at` with a zone name, a market cap
}
READS = {
    "records": (
        "SELECT source_type, source, source_record_id, kind, title, description, author, category, tags,"
        " url, published_at, symbol, asset_name, price_usd::text, market_cap_usd::text,"
        " volume_24h_usd::text, rank, pct_change_24h::text, observed_at, extra, checksum, mentions,"
        " asset_id, quote_currency, price::text, open_usd::text, high_usd::text, low_usd::text,"
        " bar_seconds, raw_id, first_run_id, last_run_id FROM unified_data ORDER BY source, source_record_id"
    ),
    "raw lines": "SELECT id, source, payload, line, line_offset, run_id, fetched_at IS NOT NULL FROM raw_csv_lines ORDER BY id",
    "history": (
        "SELECT asset_id, source, observed_at, price_usd::text, market_cap_usd::text, volume_24h_usd::text,"
        " run_id, open_usd::text, high_usd::text, low_usd::text, bar_seconds FROM market_history"
        " ORDER BY asset_id, source, observed_at"
    ),
    "candles": "SELECT * FROM market_candles ORDER BY asset_id, seconds, bucket, source",
    "assets": "SELECT id, symbol, name, needs_review FROM assets ORDER BY id",
    "aliases": "SELECT source, source_asset_id, asset_id, method, confidence FROM asset_aliases ORDER BY 1, 2",
    "quarantine": "SELECT source, source_record_id, checksum, reason, payload FROM quarantine ORDER BY 1, 2, 3",
    "counters": (
        "SELECT run_id, source, status, error, fetched, inserted, updated, unchanged, quarantined,"
        " suspect_bars FROM etl_run_sources ORDER BY run_id, source"
    ),
    "checkpoints": "SELECT source, cursor - 'mtime_ns' FROM checkpoints ORDER BY source",
}


@pytest.fixture(scope="module")
def databases(server_url: str) -> Iterator[tuple[str, str]]:
    """Two migrated databases: the row path's and the columnar path's."""
    names = [f"kaspero_paths_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    urls = [create_database(server_url, name) for name in names]
    for url in urls:
        migrate(url)
    yield urls[0], urls[1]
    for name in names:
        drop_database(server_url, name)


def emptied(*urls: str) -> None:
    for url in urls:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


def load(url: str, pattern: Path | str, columnar: bool, batch_size: int = 5000) -> None:
    settings = Settings(
        csv_source_path=str(pattern),
        csv_columnar=columnar,
        csv_workers=1,
        csv_batch_size=batch_size,
        log_level="WARNING",
    )
    app = build(settings, url)
    try:
        app.run_etl(["csv"], RunTrigger.CLI)
    finally:
        app.close()


def stored(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as connection:
        return {name: connection.execute(query).fetchall() for name, query in READS.items()}


def assert_same(rows_url: str, columns_url: str) -> dict[str, list[tuple[Any, ...]]]:
    by_rows, by_columns = stored(rows_url), stored(columns_url)
    for name in READS:
        assert by_columns[name] == by_rows[name], f"{name} differ"
    return by_rows


def blocks_read(path: Path) -> tuple[int, int]:
    """How many batches of the file the columnar path reads, and how many the row path."""
    reader = CsvFileSource(path, clock=lambda: datetime.now(UTC))
    batches = list(reader.read(None, run_id=1))
    return (
        sum(1 for batch in batches if batch.block is not None),
        sum(1 for batch in batches if batch.raws or batch.rejected),
    )


@pytest.mark.parametrize("path", REAL_FILES, ids=[path.name for path in REAL_FILES])
def test_a_real_file_is_stored_the_same_by_columns_as_row_by_row(
    databases: tuple[str, str], tmp_path: Path, path: Path
) -> None:
    rows_url, columns_url = databases
    emptied(rows_url, columns_url)
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    load(rows_url, copy, columnar=False)
    load(columns_url, copy, columnar=True)
    found = assert_same(rows_url, columns_url)
    if path.name in READ_AS_COLUMNS:
        assert found["records"], "the file loads"
        assert blocks_read(copy) == (1, 0), "every batch read as columns"


def test_the_bundled_messy_files_go_row_by_row_to_the_same_end(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    """Quoted cells, `$1,234.50`, dates in three forms: the row path reads them, and the result
    of the default (columnar) load is the row path's."""
    rows_url, columns_url = databases
    emptied(rows_url, columns_url)
    for source in (
        FIXTURES / "messy_market_history.csv",
        Path(__file__).parents[2] / "data" / "market_history.csv",
    ):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    load(rows_url, tmp_path / "*.csv", columnar=False)
    load(columns_url, tmp_path / "*.csv", columnar=True)
    found = assert_same(rows_url, columns_url)
    assert found["quarantine"], "the messy rows are quarantined, with their reasons, on both paths"


def test_appends_rewrites_other_sources_and_bad_figures_end_the_same(
    databases: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file loaded in batches, then appended to (new batches as columns), then another file
    of the same assets with one bar 30 % off (prices other sources know: bar by bar, suspect
    marked), then one of the same assets at times no other source priced (as columns), then a
    file with a price past every bound (quarantined by name), then the first file rewritten
    (records already stored: updated row by row)."""
    rows_url, columns_url = databases
    emptied(rows_url, columns_url)
    taken: list[tuple[str, bool]] = []  # each block, by source: written as columns, or not
    prepare_block = batches._prepare_block

    def spied(pipeline: Any, *args: Any) -> Any:
        prepared = prepare_block(pipeline, *args)
        taken.append((pipeline.name, prepared is not None))
        return prepared

    monkeypatch.setattr(batches, "_prepare_block", spied)
    first = write_csv(tmp_path / "first.csv", list(market_lines(days=40, assets=6, seed=5)))
    steps: list[Any] = [
        lambda: None,
        lambda: append_lines(first, list(market_lines(days=50, assets=6, seed=5))[240:]),
        lambda: write_csv(
            tmp_path / "other.csv", _one_bar_off(list(market_lines(days=10, assets=3, seed=5)))
        ),
        # the same assets half a year on: other sources know them, not at those times
        lambda: write_csv(
            tmp_path / "later.csv", list(market_lines(days=20, assets=6, seed=9, start=date(2024, 6, 1)))
        ),
        lambda: write_csv(tmp_path / "huge.csv", ["2024-01-02,HUGE,Huge,1,1,1,9000000000000000,1,"]),
        lambda: write_csv(first, list(market_lines(days=30, assets=6, seed=6))),
    ]
    for step in steps:
        step()
        load(rows_url, tmp_path / "*.csv", columnar=False, batch_size=70)
        load(columns_url, tmp_path / "*.csv", columnar=True, batch_size=70)
        found = assert_same(rows_url, columns_url)
    assert any("suspect" in str(row) for row in found["records"]), "the bar 30 % off is marked"
    assert {took for source, took in taken if source == "csv:other"} == {False}, "compared bar by bar"
    assert {took for source, took in taken if source == "csv:later"} == {True}, "nothing to compare with"
    assert any("PLAUSIBLE_MAX_PRICE_USD" in row[3] for row in found["quarantine"])
    assert any(row[6] for row in found["counters"]), "the rewritten file's records were updated"


def _one_bar_off(lines: list[str]) -> list[str]:
    date_, symbol, name, open_, _, low, close, *rest = lines[4].split(",")
    bumped = f"{float(close) * 1.3:.2f}"
    lines[4] = ",".join([date_, symbol, name, open_, bumped, low, bumped, *rest])
    return lines


bars = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=60),  # day
        st.sampled_from(["BTC", "ETH", "SOL", "btc", "DOGE"]),
        st.sampled_from(["", "Bitcoin", "Ether Coin", " padded "]),
        st.decimals(min_value=0, max_value=10**7, places=4, allow_nan=False, allow_infinity=False),
        st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda bar: (bar[0], bar[1].upper()),  # each record id once: the later row of two wins
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=bars, batch=st.integers(min_value=1, max_value=12))
def test_loading_twice_equals_loading_once_by_columns_and_by_rows(
    databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory, rows: list[Any], batch: int
) -> None:
    """Any file of bars (lower case symbols, names or none, a zero price, a missing volume, any
    batch size):
    loaded once and loaded again, by columns and by rows, the four stores hold the same."""
    rows_url, columns_url = databases
    emptied(rows_url, columns_url)
    folder = tmp_path_factory.mktemp("bars")
    lines = [
        f"{date.fromordinal(date(2024, 1, 1).toordinal() + day).isoformat()},{symbol},{name},{price},{price},"
        f"{price},{price},{'' if volume is None else volume},"
        for day, symbol, name, price, volume in rows
    ]
    (folder / "bars.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    load(rows_url, folder / "bars.csv", columnar=False, batch_size=batch)
    load(columns_url, folder / "bars.csv", columnar=True, batch_size=batch)
    once = assert_same(rows_url, columns_url)
    for url in databases:  # forget where the file was read to: read again, found unchanged
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("DELETE FROM checkpoints")
    load(rows_url, folder / "bars.csv", columnar=False, batch_size=batch)
    load(columns_url, folder / "bars.csv", columnar=True, batch_size=batch)
    twice = assert_same(rows_url, columns_url)
    for name in ("records", "raw lines", "history", "assets", "quarantine"):
        assert [row[:-2] if name == "records" else row for row in twice[name]] == [
            row[:-2] if name == "records" else row for row in once[name]
        ]


def test_each_record_read_by_columns_reaches_the_line_it_came_from(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    """Lineage over the columnar path: each record's raw row is its line as the file holds it,
    at the offset where the line starts (a banner line and the header before the first, CRLF
    line breaks left out), and its checksum is of those cells."""
    _, columns_url = databases
    emptied(columns_url)
    source = FIXTURES / "csv" / "Binance_BTCUSDT_d.csv"
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes().replace(b"\n", b"\r\n"))
    assert blocks_read(path) == (1, 0)
    load(columns_url, path, columnar=True, batch_size=7)
    content = path.read_bytes()
    with psycopg.connect(columns_url) as connection:
        rows = connection.execute(
            "SELECT u.source_record_id, u.first_run_id, r.run_id, r.line, r.line_offset, u.price::text"
            " FROM unified_data u CROSS JOIN LATERAL raw_csv_line(u.raw_id) r ORDER BY r.line_offset"
        ).fetchall()
    lines = content.split(b"\r\n")
    assert len(rows) == len([line for line in lines[2:] if line])  # the banner and the header are not rows
    for record_id, run, raw_run, line, offset, close in rows:
        assert run == raw_run
        assert content[offset : offset + len(line.encode()) + 2] == line.encode() + b"\r\n"
        cells = line.split(",")
        assert close == cells[6]  # the close as written in the file
        assert record_id == f"BTC@{cells[1][:10]}"
