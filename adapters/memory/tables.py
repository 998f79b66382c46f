"""The fake store's results as `application.tables`'s CSV, as PostgreSQL's COPY writes it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from adapters.memory.assets import InMemoryAssetRepository
from adapters.memory.reader import InMemoryRecordReader
from adapters.memory.state import InMemoryStore
from application.queries import DataQuery, SortField, SortOrder
from application.tables import HISTORY_TABLE, RECORD_TABLE
from domain.assets import HistoryQuery

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "time":
        return str((value - EPOCH) // (EPOCH.resolution))  # microseconds
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value.value if hasattr(value, "value") else value)


def _csv(columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    writer.writerows([_cell(row.get(name), kind) for name, kind in columns] for row in rows)
    yield buffer.getvalue().encode("utf-8")


class InMemoryTables:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def history_csv(self, asset_ids: Sequence[int], query: HistoryQuery) -> Iterator[bytes]:
        with self._store.lock:
            candles = InMemoryAssetRepository(self._store.state).history(asset_ids, query)
        rows = [
            {
                "bucket": c.bucket,
                "asset_id": c.asset_id,
                "source": c.source,
                "open": c.open,
                "high": c.high,
                "low": c.low,
                "close": c.close,
                "observations": c.observations,
                "flag": c.flag,
                "deviation_pct": c.deviation_pct,
            }
            for c in candles
        ]
        return _csv(HISTORY_TABLE, rows)

    def records_csv(self, query: DataQuery) -> Iterator[bytes]:
        by_id = attrs.evolve(query, sort_by=SortField.ID, sort_order=SortOrder.ASC, after=None, page=1)
        rows = [
            {name: getattr(item.record, name, None) for name, _ in RECORD_TABLE}
            | {
                "id": item.id,
                "raw_id": item.raw_id,
                "first_run_id": item.first_run_id,
                "last_run_id": item.last_run_id,
            }
            for item in InMemoryRecordReader(self._store).export_batch(
                by_id, limit=len(self._store.state.records)
            )
        ]
        return _csv(RECORD_TABLE, rows)
