"""Records, quarantined entries and candles as files: CSV, NDJSON and Parquet, written a chunk at a time
from an iterator, so an export of any size holds one batch and one chunk of bytes (Parquet: one
row group). Shared by `GET /data`, `GET /quarantine` and the histories with `format=csv|ndjson|parquet` (or
their `Accept`) and `kaspero export`. Each kind of item has a `Shape`: its columns, its typed
values, its JSON object.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs

from domain.assets import Candle
from domain.records import StoredQuarantine, StoredRecord
from entrypoints.api import shapes
from entrypoints.api.render import candle, dumps, quarantined, record

T = TypeVar("T")

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
ROW_GROUP = 10_000  # items a Parquet row group holds: a few megabytes in memory
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


@attrs.frozen
class Shape(Generic[T]):
    """A kind of item as a file: its columns in order, an item's typed values by column
    (Decimal, datetime, int, str, lists, dicts), its JSON object (NDJSON, the API's own), and the
    kind of each column that is not text (money, integer, time, list)."""

    columns: tuple[str, ...]
    values: Callable[[T], dict[str, Any]]
    json: Callable[[T], Mapping[str, Any]]  # its JSON shape (entrypoints.api.shapes)
    kinds: dict[str, str]


def _record_values(item: StoredRecord) -> dict[str, Any]:
    rec = item.record
    return {
        **{column: getattr(rec, column) for column in CSV_COLUMNS if hasattr(rec, column)},
        "source_type": rec.source_type.value,
        "kind": rec.kind.value,
        "tags": list(rec.tags),
        "mentions": list(rec.mentions),
        "id": item.id,
        "raw_id": item.raw_id,
        "first_run_id": item.first_run_id,
        "last_run_id": item.last_run_id,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


MONEY_COLUMNS = (  # a record's money (exact decimals), as every file and the document name them
    "price",
    "price_usd",
    "open_usd",
    "high_usd",
    "low_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "pct_change_24h",
)
RECORDS: Shape[StoredRecord] = Shape(
    CSV_COLUMNS,
    _record_values,
    record,
    {
        **dict.fromkeys(MONEY_COLUMNS, "money"),
        **dict.fromkeys(
            ("id", "asset_id", "bar_seconds", "rank", "raw_id", "first_run_id", "last_run_id"), "integer"
        ),
        **dict.fromkeys(("observed_at", "published_at", "created_at", "updated_at"), "time"),
        **dict.fromkeys(("tags", "mentions"), "list"),
    },
)

QUARANTINE_COLUMNS = (
    "id",
    "source",
    "source_record_id",
    "reason",
    "first_run_id",
    "last_run_id",
    "created_at",
    "updated_at",
    "payload",
)
QUARANTINED: Shape[StoredQuarantine] = Shape(
    QUARANTINE_COLUMNS,
    lambda item: {column: getattr(item, column) for column in QUARANTINE_COLUMNS},
    quarantined,
    {
        **dict.fromkeys(("id", "first_run_id", "last_run_id"), "integer"),
        **dict.fromkeys(("created_at", "updated_at"), "time"),
    },
)


CANDLE_COLUMNS = tuple(shapes.Candle.__annotations__)  # the JSON candle's keys, in its order


def candle_shape(symbols: Mapping[int, str]) -> Shape[Candle]:
    """Candles as a file: a row per bucket, asset and series, the asset's symbol beside its id."""

    def values(item: Candle) -> dict[str, Any]:
        return {column: getattr(item, column) for column in CANDLE_COLUMNS if column != "symbol"} | {
            "symbol": symbols.get(item.asset_id)
        }

    return Shape(
        CANDLE_COLUMNS,
        values,
        lambda item: candle(item, symbols),
        {
            **dict.fromkeys(("open", "high", "low", "close", "deviation_pct"), "money"),
            **dict.fromkeys(("asset_id", "observations"), "integer"),
            "bucket": "time",
        },
    )


def chunks(items: Iterable[T], format_: str, shape: Shape[T]) -> Iterator[bytes]:
    """The file of `items` in `format_` (csv, ndjson, parquet), in chunks of about CHUNK_BYTES."""
    if format_ == "csv":
        return _csv_chunks(items, shape)
    if format_ == "ndjson":
        return _ndjson_chunks(items, shape)
    if format_ == "parquet":
        return _parquet_chunks(items, shape)
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


def _csv_chunks(items: Iterable[T], shape: Shape[T]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
    writer.writerow(shape.columns)
    for item in items:
        values = shape.values(item)
        writer.writerow([_cell(values[column]) for column in shape.columns])
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _ndjson_chunks(items: Iterable[T], shape: Shape[T]) -> Iterator[bytes]:
    lines: list[bytes] = []
    size = 0
    for item in items:
        line = dumps(shape.json(item))
        lines.append(line)
        size += len(line) + 1
        if size >= CHUNK_BYTES:
            yield b"\n".join(lines) + b"\n"
            lines, size = [], 0
    if lines:
        yield b"\n".join(lines) + b"\n"


class ExportStopped(Exception):
    """A value the chosen format cannot hold exactly: the export stops rather than alter it."""


def _parquet_schema(shape: Shape[Any]) -> Any:
    import pyarrow as pa

    types = {
        "money": pa.decimal128(38, 18),
        "integer": pa.int64(),
        "time": pa.timestamp("us", tz="UTC"),
        "list": pa.list_(pa.string()),
    }
    return pa.schema(
        [(column, types.get(shape.kinds.get(column, ""), pa.string())) for column in shape.columns]
    )


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


def _parquet_columns(items: list[T], shape: Shape[T]) -> dict[str, list[Any]]:
    """Each column's values; a dict or list in a text column is its JSON (`extra`, `payload`)."""
    columns: dict[str, list[Any]] = {column: [] for column in shape.columns}
    for item in items:
        values = shape.values(item)
        for column in shape.columns:
            value = values[column]
            if isinstance(value, (dict, list)) and shape.kinds.get(column) != "list":
                value = dumps(value).decode("utf-8")
            columns[column].append(value)
    return columns


def _parquet_chunks(items: Iterable[T], shape: Shape[T]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema(shape)
    sink = _Pending()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    group: list[T] = []

    def written(batch: list[T]) -> bytes:
        columns = _parquet_columns(batch, shape)
        arrays = []
        for field in schema:
            try:
                arrays.append(pa.array(columns[field.name], type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ExportStopped(_unholdable(batch, columns[field.name], field.name)) from None
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        return sink.take()

    for item in items:
        group.append(item)
        if len(group) >= ROW_GROUP:
            yield written(group)
            group = []
    if group:
        yield written(group)
    writer.close()
    yield sink.take()


def _unholdable(items: list[Any], values: list[Any], column: str) -> str:
    for item, value in zip(items, values, strict=True):
        if isinstance(value, Decimal):
            which = f"record {item.id}" if hasattr(item, "id") else f"the candle of {item.bucket.isoformat()}"
            _sign, digits, exponent = value.as_tuple()
            places = -int(exponent) if isinstance(exponent, int) and exponent < 0 else 0
            if places > 18 or len(digits) - places > 20:
                return (
                    f"{which}: {column} {format(value, 'f')} does not fit Parquet's decimal(38, 18) "
                    "exactly; export it as csv or ndjson, which write every value whole"
                )
    return f"a value of {column} cannot be written to Parquet; export as csv or ndjson"
