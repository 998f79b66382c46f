"""The in-memory fake of every storage port, for unit tests of the use cases.

State lives in `InMemoryStore`; a unit of work edits a deep copy and swaps it in on commit,
so an uncommitted unit of work leaves the store exactly as it found it. Contract tests run
the same checks against these fakes and the PostgreSQL adapters.
"""

from __future__ import annotations

import copy
import json
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import attrs

from adapters.memory.assets import InMemoryAssetRepository, InMemoryUsdRateRepository
from adapters.memory.scheduling import (
    InMemoryRunRequestRepository,
    InMemoryScheduleRepository,
)
from adapters.memory.state import InMemoryStore, Quarantined, State, StoredRaw
from application.ports import BarColumns, LoadCounts, PreparedRows, StoredRaws
from domain.assets import HistoryPoint
from domain.checkpoints import Checkpoint
from domain.comparison import DataDelta, PriceQuote
from domain.drift import DriftFinding, DriftKind, StoredDrift
from domain.mentions import KnownAsset
from domain.records import (
    QuarantinedRecord,
    RawRecord,
    RecordKind,
    SourceType,
    StoredRecord,
    UnifiedRecord,
    is_snapshot_source,
)
from domain.runs import EtlRun, RunStatus, RunTrigger, SourceCounters, SourceRun, SourceStats


class InMemoryRecordRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def store_raws(self, run_id: int, raws: Sequence[RawRecord]) -> StoredRaws:
        state = self._state
        for raw in raws:
            raw_key = (raw.source, raw.source_record_id, raw.checksum)
            if raw_key not in state.raws:
                state.raws[raw_key] = StoredRaw(id=next(state.ids), raw=raw)
        return StoredRaws(run_id)

    def store_block_raws(self, run_id: int, block: BarColumns) -> StoredRaws:
        columns = {name: block.records[name].to_pylist() for name in ("source_record_id", "checksum")}
        raws = [
            RawRecord(
                source=block.source,
                source_record_id=str(key),
                payload={},
                checksum=str(checksum),
                fetched_at=block.fetched_at,
                run_id=run_id,
                line=line,
                position=offset,
            )
            for key, checksum, line, offset in zip(
                columns["source_record_id"], columns["checksum"], block.lines, block.offsets, strict=True
            )
        ]
        return self.store_raws(run_id, raws)

    def prepare_block(self, stored: StoredRaws, block: BarColumns) -> PreparedRows:
        return self.prepare_rows(stored, block_records(block), [])

    def prepare_rows(
        self, stored: StoredRaws, records: Sequence[UnifiedRecord], quarantined: Sequence[QuarantinedRecord]
    ) -> PreparedRows:
        source = records[0].source if records else quarantined[0].raw.source if quarantined else None
        return PreparedRows(source, (tuple(records), tuple(quarantined)))

    def write_prepared(self, run_id: int, encoded: PreparedRows) -> LoadCounts:
        content = encoded.content
        assert isinstance(content, tuple), "a batch encoded by another store"
        records, quarantined = content
        return self._load(run_id, records, quarantined)

    def _load(
        self, run_id: int, records: Sequence[UnifiedRecord], quarantined: Sequence[QuarantinedRecord]
    ) -> LoadCounts:
        state = self._state
        inserted = updated = 0
        now = datetime.now(UTC)
        for record in records:
            raw_id = state.raws[(record.source, record.source_record_id, record.checksum)].id
            record_key = (record.source, record.source_record_id)
            existing = state.records.get(record_key)
            if existing is None:
                state.records[record_key] = StoredRecord(
                    next(state.ids), record, raw_id, run_id, run_id, now, now
                )
                inserted += 1
            elif existing.record.checksum != record.checksum:
                state.records[record_key] = attrs.evolve(
                    existing, record=record, raw_id=raw_id, last_run_id=run_id, updated_at=now
                )
                updated += 1
        for record in records:
            if (
                record.asset_id is not None
                and record.observed_at is not None
                and record.price_usd is not None
            ):
                state.history.setdefault(
                    (record.asset_id, record.source, record.observed_at),
                    HistoryPoint(
                        record.observed_at, record.price_usd, record.open_usd, record.high_usd, record.low_usd
                    ),
                )
            if record.source_type is SourceType.API and is_snapshot_source(record.source):
                seen = state.observations.setdefault((record.source, run_id), {})
                seen.setdefault(record.source_record_id, record)
        for record in records:  # a quarantined payload that loads now leaves the quarantine
            state.quarantine.pop((record.source, record.source_record_id, record.checksum), None)
        for item in quarantined:
            content_key = (item.raw.source, item.raw.source_record_id, item.raw.checksum)
            previous = state.quarantine.get(content_key)
            first = previous.first_run_id if previous else run_id
            number = previous.id if previous else next(state.ids)
            state.quarantine[content_key] = Quarantined(item.raw, item.reason, first, run_id, number)
        return LoadCounts(inserted, updated, len(records) - inserted - updated, len(quarantined))

    def known_assets(self, max_rank: int) -> list[KnownAsset]:
        return sorted(
            {
                KnownAsset(item.record.symbol, item.record.asset_name)
                for item in self._state.records.values()
                if item.record.kind is RecordKind.MARKET
                and item.record.symbol is not None
                and (
                    item.record.source_type is SourceType.CSV
                    or (item.record.rank or max_rank + 1) <= max_rank
                )
            },
            key=lambda asset: (asset.symbol, asset.name or ""),
        )

    def current_checksums(self, source: str, record_ids: Sequence[str]) -> dict[str, str]:
        found = (self._state.records.get((source, key)) for key in record_ids)
        return {item.record.source_record_id: item.record.checksum for item in found if item is not None}

    def observe_unchanged(self, run_id: int, source: str, record_ids: Sequence[str]) -> datetime | None:
        moments = []
        for key in record_ids:
            record = self._state.records[(source, key)].record
            if record.source_type is SourceType.API and is_snapshot_source(record.source):
                self._state.observations.setdefault((source, run_id), {}).setdefault(key, record)
            moment = record.observed_at or record.published_at
            if moment is not None:
                moments.append(moment)
        return max(moments, default=None)

    def observation_delta(
        self, source: str, run_a: int, run_b: int, threshold_pct: float
    ) -> DataDelta | None:
        seen_a = self._state.observations.get((source, run_a))
        seen_b = self._state.observations.get((source, run_b))
        if not seen_a or not seen_b:
            return None
        a = {key: record.price_usd for key, record in seen_a.items()}
        b = {key: record.price_usd for key, record in seen_b.items()}
        moves = []
        for key in a.keys() & b.keys():
            before, after = a[key], b[key]
            if before is not None and after is not None and before > 0:
                moves.append((after - before) / before * 100)
        added, vanished = sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys())
        return DataDelta(
            in_a=len(a),
            in_b=len(b),
            added=len(added),
            vanished=len(vanished),
            compared=len(moves),
            median_price_move_pct=round(float(statistics.median(moves)), 4) if moves else None,
            moved_over_threshold=sum(1 for move in moves if abs(move) > threshold_pct),
            threshold_pct=threshold_pct,
            added_sample=tuple(added[:10]),
            vanished_sample=tuple(vanished[:10]),
        )

    def quotes_as_of(self, run_id: int, max_rank: int) -> list[PriceQuote]:
        newest: dict[str, int] = {}
        for source, seen_run in self._state.observations:
            if seen_run <= run_id:
                newest[source] = max(newest.get(source, 0), seen_run)
        started = {run_id: run.started_at for run_id, run in self._state.runs.items()}
        return [
            PriceQuote(
                record.symbol,
                source,
                float(record.price_usd),
                record.rank,
                record.asset_id,
                started.get(seen_run),
            )
            for source, seen_run in newest.items()
            for record in self._state.observations[(source, seen_run)].values()
            if record.symbol is not None
            and record.price_usd is not None
            and (record.asset_id is not None or (record.rank is not None and record.rank <= max_rank))
        ]

    def prune_observations(self, source: str, keep_runs: int) -> None:
        runs = sorted((run for src, run in self._state.observations if src == source), reverse=True)
        for run_id in runs[keep_runs:]:
            del self._state.observations[(source, run_id)]

    def latest_payloads(self, source: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        by_id = {raw.id: raw.raw for raw in self._state.raws.values()}
        found = {}
        for record_id in record_ids:
            stored = self._state.records.get((source, record_id))
            if stored is not None:
                found[record_id] = dict(by_id[stored.raw_id].payload)
        return found


class InMemoryDriftRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def record(self, source: str, run_id: int, findings: Sequence[DriftFinding], seen_at: datetime) -> None:
        for finding in findings:
            key = (source, finding.kind.value, finding.field, finding.candidate)
            previous = self._state.drifts.get(key)
            self._state.drifts[key] = StoredDrift(
                source=source,
                finding=finding,
                first_seen=previous.first_seen if previous else seen_at,
                last_seen=seen_at,
                seen_count=previous.seen_count + 1 if previous else 1,
                first_run_id=previous.first_run_id if previous else run_id,
                last_run_id=run_id,
            )

    def recent(
        self,
        source: str | None = None,
        kind: DriftKind | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredDrift]:
        chosen = [
            item
            for item in self._state.drifts.values()
            if (source is None or item.source == source)
            and (kind is None or item.finding.kind is kind)
            and (since is None or item.last_seen >= since)
        ]
        return sorted(chosen, key=lambda item: item.last_seen, reverse=True)[:limit]


class InMemoryCheckpointRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def get(self, source: str) -> Checkpoint | None:
        return self._state.checkpoints.get(source)

    def save(self, checkpoint: Checkpoint) -> None:
        self._state.checkpoints[checkpoint.source] = checkpoint

    def list(self) -> list[Checkpoint]:
        return [self._state.checkpoints[name] for name in sorted(self._state.checkpoints)]


class InMemoryRunRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def start(self, trigger: RunTrigger, started_at: datetime) -> int:
        run_id = max(self._state.runs, default=0) + 1
        self._state.runs[run_id] = EtlRun(run_id, trigger, started_at, RunStatus.RUNNING)
        return run_id

    def start_source(self, run_id: int, source: str, started_at: datetime) -> None:
        self._state.source_runs.setdefault(
            (run_id, source), SourceRun(source, SourceCounters(), RunStatus.RUNNING)
        )
        self._state.source_times.setdefault((run_id, source), (started_at, None))

    def add_counters(self, run_id: int, source: str, counters: SourceCounters) -> None:
        current = self._state.source_runs[(run_id, source)]
        self._state.source_runs[(run_id, source)] = attrs.evolve(
            current, counters=current.counters + counters
        )

    def finish_source(
        self,
        run_id: int,
        source: str,
        status: RunStatus,
        error: str | None,
        finished_at: datetime,
        duration_ms: int,
        freshness_seconds: float | None = None,
    ) -> None:
        current = self._state.source_runs[(run_id, source)]
        counters = attrs.evolve(current.counters, duration_ms=duration_ms)
        self._state.source_runs[(run_id, source)] = attrs.evolve(
            current, counters=counters, status=status, error=error, freshness_seconds=freshness_seconds
        )
        started = self._state.source_times.get((run_id, source), (finished_at, None))[0]
        self._state.source_times[(run_id, source)] = (started, finished_at)

    def finish(self, run_id: int, status: RunStatus, error: str | None, finished_at: datetime) -> None:
        self._state.runs[run_id] = attrs.evolve(
            self._state.runs[run_id], status=status, error=error, finished_at=finished_at
        )

    def get(self, run_id: int) -> EtlRun | None:
        run = self._state.runs.get(run_id)
        if run is None:
            return None
        sources = sorted(
            (item for (rid, _), item in self._state.source_runs.items() if rid == run_id),
            key=lambda item: item.source,
        )
        return attrs.evolve(run, sources=tuple(sources))

    def latest(self) -> EtlRun | None:
        return self.get(max(self._state.runs)) if self._state.runs else None

    def source_stats(self) -> list[SourceStats]:
        by_source: dict[str, list[tuple[EtlRun, SourceRun]]] = {}
        for (run_id, source), item in self._state.source_runs.items():
            by_source.setdefault(source, []).append((self._state.runs[run_id], item))
        stats = []
        for source in sorted(by_source):
            entries = sorted(by_source[source], key=lambda entry: entry[0].id)
            totals = SourceCounters()
            for _, item in entries:
                totals = totals + item.counters
            finished = [(run, item) for run, item in entries if item.status is not RunStatus.RUNNING]
            successes = [run.finished_at for run, item in finished if item.status is RunStatus.SUCCESS]
            failures = [run.finished_at for run, item in finished if item.status is RunStatus.FAILED]
            errors = [item.error for _, item in entries if item.error]
            durations = [item.counters.duration_ms for _, item in finished]
            stats.append(
                SourceStats(
                    source=source,
                    runs=len(entries),
                    totals=totals,
                    last_success_at=max((t for t in successes if t), default=None),
                    last_failure_at=max((t for t in failures if t), default=None),
                    last_error=errors[-1] if errors else None,
                    average_duration_ms=sum(durations) / len(durations) if durations else None,
                    last_duration_ms=durations[-1] if durations else None,
                    runs_by_status={
                        status.value: sum(1 for _, item in entries if item.status is status)
                        for status in RunStatus
                    },
                )
            )
        return stats

    def running_since_before(self, cutoff: datetime) -> list[int]:
        return sorted(
            run.id
            for run in self._state.runs.values()
            if run.status is RunStatus.RUNNING and run.started_at < cutoff
        )

    def abandon(self, run_id: int, error: str, finished_at: datetime) -> None:
        run = self._state.runs[run_id]
        if run.status is RunStatus.RUNNING:
            self._state.runs[run_id] = attrs.evolve(
                run, status=RunStatus.FAILED, error=error, finished_at=finished_at
            )
        for key, item in self._state.source_runs.items():
            if key[0] == run_id and item.status is RunStatus.RUNNING:
                self._state.source_runs[key] = attrs.evolve(item, status=RunStatus.FAILED, error=error)

    def add_responses(self, run_id: int, source: str, responses: Mapping[str, int]) -> None:
        for status, count in responses.items():
            key = (run_id, source, status)
            self._state.responses[key] = self._state.responses.get(key, 0) + count

    def response_totals(self) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = {}
        for (_, source, status), count in self._state.responses.items():
            totals[(source, status)] = totals.get((source, status), 0) + count
        return totals

    def recent(
        self,
        limit: int,
        status: RunStatus | None = None,
        source: str | None = None,
        before: int | None = None,
    ) -> list[EtlRun]:
        ids = sorted(
            (run_id for run_id in self._state.runs if before is None or run_id < before), reverse=True
        )
        runs = [self.get(run_id) for run_id in ids]
        chosen = [
            run
            for run in runs
            if run is not None
            and (status is None or run.status is status)
            and (source is None or any(item.source == source for item in run.sources))
        ]
        return chosen[:limit]


class InMemoryMaintenance:
    """The fake has no planner: it remembers which sources asked, for the tests."""

    def __init__(self, state: State) -> None:
        self._state = state

    def refresh_after_load(self, rows_written: int) -> bool:
        if rows_written <= 0:
            return False
        self._state.analyzed.append(rows_written)
        return True

    def drop_history_before(self, cutoff: datetime) -> int:
        """As PostgreSQL's: the bars observed before `cutoff` go, and the records that are bars."""
        gone = [key for key in self._state.history if key[2] < cutoff]
        for key in gone:
            del self._state.history[key]
        for record_key, stored in list(self._state.records.items()):
            record = stored.record
            if (
                record.asset_id is not None
                and record.price_usd is not None
                and record.observed_at is not None
                and record.observed_at < cutoff
            ):
                del self._state.records[record_key]
        return len(gone)


class InMemoryUnitOfWork:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._working: State | None = None

    def __enter__(self) -> Self:
        self._store.lock.acquire()
        self._begin()
        return self

    def _begin(self) -> None:
        self._working = copy.deepcopy(self._store.state)
        self.records = self.observations = self.blocks = InMemoryRecordRepository(self._working)
        self.checkpoints = InMemoryCheckpointRepository(self._working)
        self.runs = InMemoryRunRepository(self._working)
        self.drifts = InMemoryDriftRepository(self._working)
        self.requests = InMemoryRunRequestRepository(self._working)
        self.schedule = InMemoryScheduleRepository(self._working)
        self.assets = InMemoryAssetRepository(self._working)
        self.rates = InMemoryUsdRateRepository(self._working)
        self.maintenance = InMemoryMaintenance(self._working)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._working = None
        self._store.lock.release()

    def commit(self) -> None:
        assert self._working is not None, "commit() outside of `with uow:`"
        self._store.state = self._working
        self._store.commits += 1
        self._begin()

    def rollback(self) -> None:
        self._begin()


_DECIMALS = (
    "price_usd", "market_cap_usd", "volume_24h_usd", "pct_change_24h", "price", "open_usd", "high_usd", "low_usd",
)  # fmt: skip
_MOMENTS = ("published_at", "observed_at")
_INTEGERS = ("rank", "asset_id", "bar_seconds")


def block_records(block: BarColumns) -> list[UnifiedRecord]:
    """A block's columns of text read back as the records they hold (what the fake stores)."""
    names = list(block.records)
    records = []
    for values in zip(*(block.records[name].to_pylist() for name in names), strict=True):
        fields: dict[str, Any] = {}
        for name, value in zip(names, values, strict=True):
            if value is None:
                fields[name] = None
            elif name in _DECIMALS:
                fields[name] = Decimal(value)
            elif name in _MOMENTS:
                fields[name] = datetime.fromisoformat(value)
            elif name in _INTEGERS:
                fields[name] = int(value)
            elif name == "extra":
                fields[name] = json.loads(value)
            elif name == "source_type":
                fields[name] = SourceType(value)
            elif name == "kind":
                fields[name] = RecordKind(value)
            else:
                fields[name] = value
        records.append(UnifiedRecord(**{name: value for name, value in fields.items() if value is not None}))
    return records
