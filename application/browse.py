"""Reading the unified records back: the use cases behind `/data` and `/data/{id}`."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from application.errors import NotFound
from application.ports import QuarantineExporter, QuarantineReader, RecordExporter, RecordReader
from application.queries import DataQuery, Page, QuarantineQuery, SortKey, sort_value
from domain.records import StoredQuarantine, StoredRecord

# records read per round trip of an export: large enough that the round trips cost little, small
# enough that a batch held in memory stays a few megabytes whatever the export's size
EXPORT_BATCH = 2_000


def find_records(reader: RecordReader, query: DataQuery) -> Page[StoredRecord]:
    return reader.find(query)


def export_records(
    exporter: RecordExporter, query: DataQuery, batch: int = EXPORT_BATCH
) -> Iterator[StoredRecord]:
    """Every record matching `query` (its filters, sort and `after` key; not its page), in its
    order, a batch at a time by keyset: memory stays one batch whatever the size. Records written
    while an export runs appear once or not at all; none appears twice."""
    after = query.after
    while True:
        items = exporter.export_batch(attrs.evolve(query, page=1, after=after), batch)
        yield from items
        if len(items) < batch:
            return
        last = items[-1]
        after = SortKey(value=sort_value(last, query.sort_by), id=last.id)


def export_quarantined(
    exporter: QuarantineExporter, query: QuarantineQuery, batch: int = EXPORT_BATCH
) -> Iterator[StoredQuarantine]:
    """Every quarantined entry matching `query`'s filters, newest first, a batch at a time by id."""
    after = query.after_id
    while True:
        items = exporter.export_batch(attrs.evolve(query, page=1, after_id=after), batch)
        yield from items
        if len(items) < batch:
            return
        after = items[-1].id


def find_quarantined(reader: QuarantineReader, query: QuarantineQuery) -> Page[StoredQuarantine]:
    return reader.find(query)


def get_record(reader: RecordReader, record_id: int) -> StoredRecord:
    record = reader.get(record_id)
    if record is None:
        raise NotFound(f"no record with id {record_id}")
    return record
