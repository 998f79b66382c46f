"""The CSV reader and normalizer on real files: messy cells, and incremental reads by byte offset."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from adapters.feeds.csv_file import CsvFileSource
from application.batches import normalize_batch
from application.errors import SourceUnavailable
from application.ports import Batch
from tests.support.market_csv import HEADER, append_lines, market_lines, write_csv


def clock() -> datetime:
    return datetime(2024, 6, 1, tzinfo=UTC)


def read_all(
    reader: CsvFileSource, cursor: dict[str, Any] | None = None
) -> tuple[list[Batch], dict[str, Any] | None]:
    """Every batch the reader yields, a batch read as columns (clean bars) with its rows as the
    row path reads them (`BarBlock.raws`, which a batch falls back on), so each test holds both
    paths to the same rows and cursors."""
    batches = [
        attrs.evolve(batch, raws=batch.block.raws(), block=None) if batch.block is not None else batch
        for batch in reader.read(cursor, run_id=1)
    ]
    return batches, (batches[-1].cursor if batches else cursor)


def ids(batches: list[Batch]) -> list[str]:
    return [raw.source_record_id for batch in batches for raw in batch.raws]


MESSY = (
    "\ufeffDate,Symbol,Name,Open,High,Low,Close (USD),Volume,Market Cap,Exchange\r\n"
    '2024-01-01,btc,Bitcoin,"$42,000.00",43000,41000,"$42,500.50","1,234,567",N/A,Binance\r\n'
    '01/02/2024,ETH,Ethereum,2300,2350,2250,2310.25,,"275,000,000,000",\r\n'
    '"Jan 03, 2024",SOL,"Solana, the chain",100,105,99,101.5,5000000,,"multi\r\nline"\r\n'
    "2024-01-04,XRP,XRP,0.6,0.62,0.59,not-a-price,100,100,\r\n"
    "2024-01-05,,Nameless,1,1,1,1,1,1,\r\n"
    "2024-01-06,ADA,Cardano,0.5,0.5,0.5,0.5,1,1,x,extra-cell\r\n"
    "\r\n"
    "2024-01-07,DOGE,Dogecoin,0.08,0.09,0.07,0.085,1,1,\r\n"
)


def test_messy_export_cells_are_read_and_bad_rows_are_quarantined_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    path.write_bytes(MESSY.encode("utf-8"))
    reader = CsvFileSource(path, clock)
    assert reader.source.name == "csv:messy"
    [batch] = list(reader.read(None, run_id=1))
    records, quarantined = normalize_batch(batch, reader)

    by_symbol = {record.symbol: record for record in records}
    assert sorted(by_symbol) == ["BTC", "DOGE", "SOL"]
    btc = by_symbol["BTC"]
    assert btc.source_record_id == "BTC@2024-01-01"
    assert btc.price_usd == Decimal("42500.50")
    assert btc.volume_24h_usd == Decimal(1234567)  # beside market caps: an aggregator's quote volume
    assert btc.market_cap_usd is None
    assert btc.observed_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert (btc.quote_currency, btc.price, btc.open_usd) == ("USD", Decimal("42500.50"), Decimal("42000.00"))
    assert btc.extra == {
        "open": "42000.00",
        "high": "43000",
        "low": "41000",
        "Exchange": "Binance",
    }
    assert reader.layout is not None
    assert reader.layout.quote.source == "column 'Close (USD)' names its currency"
    assert by_symbol["SOL"].asset_name == "Solana, the chain"
    assert by_symbol["SOL"].extra["Exchange"] == "multi\r\nline"

    reasons = sorted(item.reason for item in quarantined)
    assert reasons == [
        "Close (USD): not a number: 'not-a-price'",
        "Date: ambiguous date '01/02/2024': day and month could be either way round, and its column "
        "does not say; set date_order (dmy or mdy) for this file in csv_options.toml",
        "Symbol: required value is missing",
        "row has 11 cells but the header has 10",
    ]


def test_invalid_utf8_quarantines_that_row_only(tmp_path: Path) -> None:
    path = tmp_path / "bytes.csv"
    path.write_bytes(
        f"{HEADER}\n2024-01-01,BTC,Bit\xffcoin,1,1,1,1,1,1\n".encode("latin-1")
        + b"2024-01-01,ETH,E,1,1,1,2,1,1\n"
    )
    [batch] = list(CsvFileSource(path, clock).read(None, run_id=1))
    assert [item.reason for item in batch.rejected] == ["row is not valid UTF-8"]
    assert [raw.source_record_id for raw in batch.raws] == ["ETH@2024-01-01"]


def test_an_untouched_file_is_skipped_without_reading(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "prices.csv", list(market_lines(5)))
    reader = CsvFileSource(path, clock, batch_size=4)
    batches, cursor = read_all(reader)
    assert len(ids(batches)) == 15
    assert [len(batch.raws) for batch in batches] == [4, 4, 4, 3]
    again, _ = read_all(reader, cursor)
    assert again == []


def test_appended_rows_are_the_only_ones_read_next_time(tmp_path: Path) -> None:
    lines = list(market_lines(10))
    path = write_csv(tmp_path / "prices.csv", lines[:20], newline="\r\n")
    reader = CsvFileSource(path, clock)
    first, cursor = read_all(reader)
    append_lines(path, lines[20:], newline="\r\n")
    second, cursor = read_all(reader, cursor)
    assert len(ids(first)) == 20
    assert ids(second) == [line.split(",")[1] + "@" + line.split(",")[0] for line in lines[20:]]
    assert cursor is not None
    assert cursor["offset"] == path.stat().st_size


def test_a_touched_but_unchanged_file_reads_nothing_and_remembers_its_new_mtime(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "prices.csv", list(market_lines(2)))
    reader = CsvFileSource(path, clock)
    _, cursor = read_all(reader)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    batches, new_cursor = read_all(reader, cursor)
    assert ids(batches) == []
    assert new_cursor is not None
    assert new_cursor["mtime_ns"] == path.stat().st_mtime_ns
    assert list(reader.read(new_cursor, run_id=1)) == []


@pytest.mark.parametrize("change", ["rewritten", "truncated"])
def test_a_rewritten_or_truncated_file_is_read_again_from_the_top(tmp_path: Path, change: str) -> None:
    lines = list(market_lines(6))
    path = write_csv(tmp_path / "prices.csv", lines)
    reader = CsvFileSource(path, clock)
    _, cursor = read_all(reader)
    if change == "rewritten":
        # same size, one early price edited: only the prefix hash can tell
        edited = [lines[0].replace(lines[0].split(",")[6], "9" * len(lines[0].split(",")[6]), 1), *lines[1:]]
        write_csv(path, edited)
        assert path.stat().st_size == cursor["size"]
        expected = len(lines)
    else:
        write_csv(path, lines[:5])
        expected = 5
    batches, _ = read_all(reader, cursor)
    assert len(ids(batches)) == expected


def test_an_unterminated_last_line_is_loaded_and_read_again_once_complete(tmp_path: Path) -> None:
    lines = list(market_lines(2))
    path = tmp_path / "prices.csv"
    path.write_bytes(("\n".join([HEADER, *lines[:5]]) + "\n" + lines[5][:20]).encode())
    reader = CsvFileSource(path, clock)
    first, cursor = read_all(reader)
    assert len(ids(first)) == 6  # the partial line is read (and quarantined by the normalizer)
    with path.open("ab") as handle:
        handle.write((lines[5][20:] + "\n").encode())
    second, _ = read_all(reader, cursor)
    assert ids(second) == ["SOL@2023-01-02"]
    records, _ = normalize_batch(second[0], reader)
    assert records[0].price_usd is not None


def test_a_missing_file_is_a_clear_source_error(tmp_path: Path) -> None:
    reader = CsvFileSource(tmp_path / "absent.csv", clock)
    with pytest.raises(SourceUnavailable, match=r"csv:absent: cannot open .*absent\.csv"):
        list(reader.read(None, run_id=1))


def test_a_header_only_file_yields_an_empty_checkpointed_batch(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "empty.csv", [])
    batches, cursor = read_all(CsvFileSource(path, clock))
    assert ids(batches) == []
    assert cursor is not None
    assert cursor["offset"] == path.stat().st_size
