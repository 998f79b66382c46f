"""Records as files: CSV, NDJSON and Parquet, written a chunk at a time from an iterator of
records, so an export of any size holds one batch of records and one chunk of bytes (Parquet: one
row group). Shared by `GET /data` with `format=csv|ndjson|parquet` (or their `Accept`) and
`kaspero export`.

Parquet holds money as `decimal(38, 18)`, which every reader of Parquet takes (pandas, polars,
DuckDB, Spark); a stored value with more than 18 decimal places or 20 integer digits cannot be
held exactly, and the export stops saying which record and column, rather than rounding it
(CSV and NDJSON write every value whole).

Money is the stored decimal written out in full (`format(value, "f")`, never a float or an
exponent), times are ISO 8601 in UTC, and in CSV the lists (`tags`, `mentions`) and `extra` are
JSON. Values are written as stored: a title starting with `=` stays so (open untrusted exports in
a spreadsheet with formulas disabled)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.records import StoredRecord
from entrypoints.api.render import dumps, record

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": PARQUET_MEDIA_TYPE,
}
# the Accept values that ask for a file instead of a JSON page
ACCEPTED = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    PARQUET_MEDIA_TYPE: "parquet",
}
ROW_GROUP = 10_000  # records a Parquet row group holds: a few megabytes in memory
CHUNK_BYTES = 64 * 1024

CSV_COLUMNS = (
    "id",
    "source_type",
    "source",
    "source_record_id",
    "kind",
    "symbol",
    "asset_name",
    "asset_id",
    "quote_currency",
    "price",
    "price_usd",
    "open_usd",
    "high_usd",
    "low_usd",
    "bar_seconds",
    "market_cap_usd",
    "volume_24h_usd",
    "rank",
    "pct_change_24h",
    "observed_at",
    "published_at",
    "title",
    "description",
    "author",
    "category",
    "url",
    "tags",
    "mentions",
    "extra",
    "raw_id",
    "checksum",
    "first_run_id",
    "last_run_id",
    "created_at",
    "updated_at",
)


def chunks(records: Iterable[StoredRecord], format_: str) -> Iterator[bytes]:
    """The file of `records` in `format_` ("csv" or "ndjson"), in chunks of about CHUNK_BYTES."""
    if format_ == "csv":
        return _csv_chunks(records)
    if format_ == "ndjson":
        return _ndjson_chunks(records)
    if format_ == "parquet":
        return _parquet_chunks(records)
    raise ValueError(f"no export format {format_!r}: one of csv, ndjson, parquet")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        return dumps(value).decode("utf-8")
    return str(value)


def csv_row(item: StoredRecord) -> list[str]:
    flat = record(item)
    lineage = flat.pop("lineage")
    flat.update(lineage)
    return [_cell(flat[column]) for column in CSV_COLUMNS]


def _csv_chunks(records: Iterable[StoredRecord]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
    writer.writerow(CSV_COLUMNS)
    for item in records:
        writer.writerow(csv_row(item))
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _ndjson_chunks(records: Iterable[StoredRecord]) -> Iterator[bytes]:
    lines: list[bytes] = []
    size = 0
    for item in records:
        line = dumps(record(item))
        lines.append(line)
        size += len(line) + 1
        if size >= CHUNK_BYTES:
            yield b"\n".join(lines) + b"\n"
            lines, size = [], 0
    if lines:
        yield b"\n".join(lines) + b"\n"


class ExportStopped(Exception):
    """A value the chosen format cannot hold exactly: the export stops rather than alter it."""


_MONEY = (
    "price",
    "price_usd",
    "open_usd",
    "high_usd",
    "low_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "pct_change_24h",
)
_INTEGERS = ("id", "asset_id", "bar_seconds", "rank", "raw_id", "first_run_id", "last_run_id")
_TIMES = ("observed_at", "published_at", "created_at", "updated_at")
_LISTS = ("tags", "mentions")


def _parquet_schema() -> Any:
    import pyarrow as pa

    def kind(column: str) -> Any:
        if column in _MONEY:
            return pa.decimal128(38, 18)
        if column in _INTEGERS:
            return pa.int64()
        if column in _TIMES:
            return pa.timestamp("us", tz="UTC")
        if column in _LISTS:
            return pa.list_(pa.string())
        return pa.string()

    return pa.schema([(column, kind(column)) for column in CSV_COLUMNS])


class _Pending:
    """A write-only file for the Parquet writer: what it wrote since the last `take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _parquet_columns(items: list[StoredRecord]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {column: [] for column in CSV_COLUMNS}
    for item in items:
        rec = item.record
        values = {
            **{column: getattr(rec, column) for column in CSV_COLUMNS if hasattr(rec, column)},
            "source_type": rec.source_type.value,
            "kind": rec.kind.value,
            "tags": list(rec.tags),
            "mentions": list(rec.mentions),
            "extra": dumps(rec.extra).decode("utf-8"),
            "id": item.id,
            "raw_id": item.raw_id,
            "first_run_id": item.first_run_id,
            "last_run_id": item.last_run_id,
            "created_at": item.created_at,
            "updated_at": item.updated_at,
        }
        for column in CSV_COLUMNS:
            columns[column].append(values[column])
    return columns


def _parquet_chunks(records: Iterable[StoredRecord]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    sink = _Pending()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    group: list[StoredRecord] = []

    def written(items: list[StoredRecord]) -> bytes:
        columns = _parquet_columns(items)
        arrays = []
        for field in schema:
            try:
                arrays.append(pa.array(columns[field.name], type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ExportStopped(_unholdable(items, columns[field.name], field.name)) from None
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        return sink.take()

    for item in records:
        group.append(item)
        if len(group) >= ROW_GROUP:
            yield written(group)
            group = []
    if group:
        yield written(group)
    writer.close()
    yield sink.take()


def _unholdable(items: list[StoredRecord], values: list[Any], column: str) -> str:
    for item, value in zip(items, values, strict=True):
        if isinstance(value, Decimal):
            _sign, digits, exponent = value.as_tuple()
            places = -int(exponent) if isinstance(exponent, int) and exponent < 0 else 0
            if places > 18 or len(digits) - places > 20:
                return (
                    f"record {item.id}: {column} {format(value, 'f')} does not fit Parquet's decimal(38, 18) "
                    "exactly; export it as csv or ndjson, which write every value whole"
                )
    return f"a value of {column} cannot be written to Parquet; export as csv or ndjson"
