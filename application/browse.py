"""Reading the unified records back: the use cases behind `/data` and `/data/{id}`."""

from __future__ import annotations

from application.errors import NotFound
from application.ports import QuarantineReader, RecordReader
from application.queries import DataQuery, Page, QuarantineQuery
from domain.records import StoredQuarantine, StoredRecord


def find_records(reader: RecordReader, query: DataQuery) -> Page[StoredRecord]:
    return reader.find(query)


def find_quarantined(reader: QuarantineReader, query: QuarantineQuery) -> Page[StoredQuarantine]:
    return reader.find(query)


def get_record(reader: RecordReader, record_id: int) -> StoredRecord:
    record = reader.get(record_id)
    if record is None:
        raise NotFound(f"no record with id {record_id}")
    return record
