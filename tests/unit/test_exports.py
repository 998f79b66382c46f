"""The export files as a reader of them sees them: CSV read back by the csv module, NDJSON line
by line, across chunk boundaries, with hostile text and money past a float's precision."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import attrs

from domain.records import RecordKind, SourceType, StoredRecord, UnifiedRecord
from entrypoints.api.render import record as rendered
from entrypoints.exports import CHUNK_BYTES, CSV_COLUMNS, chunks
from entrypoints.exports import RECORDS as SHAPE

AT = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


def _stored(i: int) -> StoredRecord:
    record = UnifiedRecord(
        source="rss:news",
        source_type=SourceType.RSS if i % 2 else SourceType.CSV,
        source_record_id=f"r{i}",
        kind=RecordKind.ARTICLE if i % 2 else RecordKind.MARKET,
        checksum=f"{i:064x}",
        title=f'=HYPERLINK("x"), "quoted", line\nbreak, ünïcode {i}' if i % 2 else None,
        tags=("a,b", 'c"d'),
        published_at=AT,
        symbol=None if i % 2 else "BTC",
        price_usd=None if i % 2 else Decimal("12345678901234567890.123456789012345678"),
        volume_24h_usd=None if i % 2 else Decimal("1E-18"),
        extra={"nested": {"x": [1, "2"]}, "big": 2**70},
        mentions=("BTC",) if i % 2 else (),
    )
    return StoredRecord(
        id=i, record=record, raw_id=1000 + i, first_run_id=1, last_run_id=2, created_at=AT, updated_at=AT
    )


RECORDS = [_stored(i) for i in range(1, 2001)]


def test_csv_reads_back_value_by_value_across_chunks() -> None:
    parts = list(chunks(iter(RECORDS), "csv", SHAPE))
    assert len(parts) > 3  # chunked, not one body
    assert all(len(part) < 2 * CHUNK_BYTES for part in parts)
    rows = list(csv.reader(io.StringIO(b"".join(parts).decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + len(RECORDS)
    for row, item in zip(rows[1:], RECORDS, strict=True):
        cells = dict(zip(CSV_COLUMNS, row, strict=True))
        assert cells["id"] == str(item.id)
        assert cells["title"] == (item.record.title or "")  # as stored: quotes, commas, a line break
        assert cells["price_usd"] == (
            "" if item.record.price_usd is None else "12345678901234567890.123456789012345678"
        )
        assert cells["volume_24h_usd"] == (
            "" if item.record.volume_24h_usd is None else "0.000000000000000001"
        )
        assert json.loads(cells["tags"]) == ["a,b", 'c"d']
        assert json.loads(cells["extra"]) == {"nested": {"x": [1, "2"]}, "big": 2**70}
        assert datetime.fromisoformat(cells["published_at"]) == AT
        assert cells["raw_id"] == str(item.raw_id)


def test_ndjson_is_the_json_record_a_line() -> None:
    body = b"".join(chunks(iter(RECORDS), "ndjson", SHAPE))
    lines = body.decode("utf-8").split("\n")
    assert lines[-1] == ""  # every line ends
    parsed = [json.loads(line) for line in lines[:-1]]
    expected = json.loads(json.dumps([rendered(item) for item in RECORDS], default=str))
    assert [line["id"] for line in parsed] == [item.id for item in RECORDS]
    assert parsed[1]["price_usd"] == expected[1]["price_usd"] == "12345678901234567890.123456789012345678"
    assert [line["title"] for line in parsed] == [item["title"] for item in expected]


def test_an_empty_export_is_a_header_or_nothing() -> None:
    assert b"".join(chunks(iter([]), "csv", SHAPE)).decode() == ",".join(CSV_COLUMNS) + "\r\n"
    assert b"".join(chunks(iter([]), "ndjson", SHAPE)) == b""


def test_parquet_reads_back_with_exact_decimals_and_real_types() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    many = [_stored(i) for i in range(1, 25_001)]  # three row groups
    parts = list(chunks(iter(many), "parquet", SHAPE))
    assert len(parts) >= 3
    table = pq.read_table(io.BytesIO(b"".join(parts)))
    assert pq.ParquetFile(io.BytesIO(b"".join(parts))).num_row_groups == 3
    assert table.column_names == list(CSV_COLUMNS)
    assert table.schema.field("price_usd").type == pa.decimal128(38, 18)
    assert table.schema.field("published_at").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    assert [row["id"] for row in rows] == [item.id for item in many]
    btc = rows[1]
    assert btc["price_usd"] == Decimal("12345678901234567890.123456789012345678")
    assert btc["volume_24h_usd"] == Decimal("1E-18")
    assert btc["published_at"] == AT
    assert rows[0]["title"] == RECORDS[0].record.title
    assert rows[0]["tags"] == ["a,b", 'c"d']
    assert json.loads(rows[0]["extra"]) == {"nested": {"x": [1, "2"]}, "big": 2**70}


def test_parquet_stops_rather_than_round_a_value_it_cannot_hold() -> None:
    import pytest

    from entrypoints.exports import ExportStopped

    odd = attrs.evolve(
        RECORDS[1], record=attrs.evolve(RECORDS[1].record, price=Decimal("0.1234567890123456789"))
    )
    with pytest.raises(ExportStopped, match=r"record 2: price 0\.1234567890123456789 does not fit"):
        b"".join(chunks(iter([RECORDS[0], odd]), "parquet", SHAPE))
