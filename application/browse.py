"""Reading the unified records back: the use cases behind `/data` and `/data/{id}`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import attrs

from application.errors import NotFound
from application.ports import QuarantineExporter, QuarantineReader, RecordExporter, RecordReader
from application.queries import DataQuery, Page, QuarantineQuery, SortKey, sort_value
from domain.records import StoredQuarantine, StoredRecord

T = TypeVar("T")
K = TypeVar("K")

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
    return _by_keyset(
        lambda after: exporter.export_batch(attrs.evolve(query, page=1, after=after), batch),
        query.after,
        lambda last: SortKey(value=sort_value(last, query.sort_by), id=last.id),
        batch,
    )


def export_quarantined(
    exporter: QuarantineExporter, query: QuarantineQuery, batch: int = EXPORT_BATCH
) -> Iterator[StoredQuarantine]:
    """Every quarantined entry matching `query`'s filters, newest first, a batch at a time by id."""
    return _by_keyset(
        lambda after: exporter.export_batch(attrs.evolve(query, page=1, after_id=after), batch),
        query.after_id,
        lambda last: last.id,
        batch,
    )


def _by_keyset(
    fetch: Callable[[K | None], Sequence[T]], first: K | None, key: Callable[[T], K], batch: int
) -> Iterator[T]:
    """Batches fetched after the key of the previous one's last item, until one comes short."""
    after = first
    while True:
        items = fetch(after)
        yield from items
        if len(items) < batch:
            return
        after = key(items[-1])


def find_quarantined(reader: QuarantineReader, query: QuarantineQuery) -> Page[StoredQuarantine]:
    return reader.find(query)


def get_record(reader: RecordReader, record_id: int) -> StoredRecord:
    record = reader.get(record_id)
    if record is None:
        raise NotFound(f"no record with id {record_id}")
    return record
