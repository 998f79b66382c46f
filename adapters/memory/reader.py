"""The read side over the in-memory store, with the same filter, sort and paging rules as SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.memory.state import InMemoryStore
from application.queries import DataQuery, Page, QuarantineQuery, SortOrder, next_key, sort_value
from domain.assets import Asset
from domain.health import SourceRunState
from domain.records import RawRecord, RecordKind, StoredQuarantine, StoredRecord, UnifiedRecord
from domain.runs import RunStatus, RunTrigger


class InMemoryRecordReader:
    """The read side over the fake store, with the same filter and sort rules as SQL."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def find(self, query: DataQuery) -> Page[StoredRecord]:
        matches, ordered = self._ordered(query)
        window = ordered[query.offset : query.offset + query.page_size]
        return Page(
            items=window,
            page=query.page,
            page_size=query.page_size,
            total_items=len(matches),
            next_after=next_key(window, query),
        )

    def export_batch(self, query: DataQuery, limit: int) -> list[StoredRecord]:
        return self._ordered(query)[1][query.offset : query.offset + limit]

    def _ordered(self, query: DataQuery) -> tuple[list[StoredRecord], list[StoredRecord]]:
        """The records matching the query's filters, and those of them in its order past its key."""
        assets = self._store.state.assets
        matches = [
            item for item in self._store.state.records.values() if _matches(item.record, query, assets)
        ]
        field = query.sort_by
        descending = query.sort_order is SortOrder.DESC
        # NULLS LAST in both directions, ties broken by id in the sort's direction, as in SQL
        present = [i for i in matches if sort_value(i, field) is not None]
        absent = [i for i in matches if sort_value(i, field) is None]
        present.sort(key=lambda i: (sort_value(i, field), i.id), reverse=descending)
        absent.sort(key=lambda i: i.id, reverse=descending)
        ordered = present + absent
        if query.after is not None:
            ordered = [item for item in ordered if _is_after(item, query)]
        return matches, ordered

    def get(self, record_id: int) -> StoredRecord | None:
        return next((item for item in self._store.state.records.values() if item.id == record_id), None)


def _is_after(item: StoredRecord, query: DataQuery) -> bool:
    """Whether an item sorts after the query's key, in the query's order, NULLS LAST."""
    key = query.after
    assert key is not None
    value = sort_value(item, query.sort_by)
    later: Any = (lambda a, b: a < b) if query.sort_order is SortOrder.DESC else (lambda a, b: a > b)
    if key.value is None:
        return value is None and later(item.id, key.id)
    if value is None:
        return True
    return bool(later(value, key.value) or (value == key.value and later(item.id, key.id)))


def _matches(record: UnifiedRecord, query: DataQuery, assets: dict[int, Asset]) -> bool:
    checks = [
        (query.source_type, record.source_type),
        (query.kind, record.kind),
        (query.asset_id, record.asset_id),
        (query.category, record.category),
        (query.author, record.author),
    ]
    if any(wanted is not None and wanted != actual for wanted, actual in checks):
        return False
    if query.source and record.source not in query.source:
        return False
    if query.quote_currency and record.quote_currency not in query.quote_currency:
        return False
    wanted = {symbol.upper() for symbol in query.symbol}
    if wanted and record.symbol not in wanted and not wanted & set(record.mentions):
        return False
    if query.search:
        needle = query.search.lower()
        if record.kind is RecordKind.ARTICLE:
            if not any(needle in (text or "").lower() for text in (record.title, record.description)):
                return False
        else:
            asset = assets.get(record.asset_id) if record.asset_id is not None else None
            if asset is None or not any(
                needle in (text or "").lower() for text in (asset.symbol, asset.name)
            ):
                return False
    moment = record.published_at
    if query.start_date and (moment is None or moment < query.start_date):
        return False
    return not (query.end_date and (moment is None or moment > query.end_date))


class InMemoryHealthProbe:
    def __init__(self, reachable: bool = True, pending: Sequence[str] = ()) -> None:
        self.reachable = reachable
        self.pending = list(pending)

    def database_reachable(self) -> bool:
        return self.reachable

    def pending_migrations(self) -> list[str]:
        return list(self.pending)


class InMemoryQuarantineReader:
    """Quarantined records of the fake store, newest first, with the SQL reader's filters."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def find(self, query: QuarantineQuery) -> Page[StoredQuarantine]:
        matches, after = self._matching(query)
        return Page(
            items=after[query.offset : query.offset + query.page_size],
            page=query.page,
            page_size=query.page_size,
            total_items=len(matches),
        )

    def export_batch(self, query: QuarantineQuery, limit: int) -> list[StoredQuarantine]:
        return self._matching(query)[1][:limit]

    def replayable(
        self, source: str, reason: str | None, after_id: int, limit: int
    ) -> list[tuple[int, RawRecord]]:
        state = self._store.state
        found = []
        for item in sorted(state.quarantine.values(), key=lambda item: item.id):
            stored = state.records.get((item.raw.source, item.raw.source_record_id))
            if (
                item.raw.source == source
                and item.id > after_id
                and (reason is None or reason.lower() in item.reason.lower())
                and (stored is None or stored.last_run_id <= item.last_run_id)
            ):
                found.append((item.id, item.raw))
        return found[:limit]

    def _matching(self, query: QuarantineQuery) -> tuple[list[StoredQuarantine], list[StoredQuarantine]]:
        """The entries matching the filters, newest first, and those of them past `after_id`."""
        entries = [
            StoredQuarantine(
                id=item.id,
                source=item.raw.source,
                source_record_id=item.raw.source_record_id,
                reason=item.reason,
                payload=dict(item.raw.payload),
                first_run_id=item.first_run_id,
                last_run_id=item.last_run_id,
                created_at=item.raw.fetched_at,
                updated_at=item.raw.fetched_at,
            )
            for item in sorted(self._store.state.quarantine.values(), key=lambda item: item.id)
        ]
        matches = [
            entry
            for entry in reversed(entries)
            if (query.source is None or entry.source == query.source)
            and (query.run_id is None or entry.first_run_id <= query.run_id <= entry.last_run_id)
            and (query.reason is None or query.reason.lower() in entry.reason.lower())
        ]
        after = [entry for entry in matches if query.after_id is None or entry.id < query.after_id]
        return matches, after


class InMemorySourceRunLedger:
    """Each source's newest finished run in the fake store, as the SQL ledger answers."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def latest_finished(self) -> list[SourceRunState]:
        newest: dict[str, SourceRunState] = {}
        for (run_id, source), item in sorted(self._store.state.source_runs.items()):
            if item.status is RunStatus.RUNNING:
                continue
            started, finished = self._store.state.source_times.get((run_id, source), (None, None))
            run = self._store.state.runs[run_id]
            if run.trigger in (RunTrigger.REPLAY, RunTrigger.BACKFILL):
                continue
            newest[source] = SourceRunState(
                source,
                run_id,
                item.status,
                started or run.started_at,
                finished or run.finished_at,
                item.error,
            )
        return [newest[source] for source in sorted(newest)]
