"""Records as files: CSV and NDJSON, written a chunk at a time from an iterator of records, so an
export of any size holds one batch of records and one chunk of bytes. Shared by `GET /data` with
`format=csv|ndjson` (or their `Accept`) and `kaspero export`.

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

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
# the Accept values that ask for a file instead of a JSON page
ACCEPTED = {"text/csv": "csv", "application/x-ndjson": "ndjson", "application/ndjson": "ndjson"}
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
    raise ValueError(f"no export format {format_!r}: one of csv, ndjson")


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
