"""One source's run: its batches read, checked for drift, normalized, given their assets and
committed, one at a time.

A batch commits in two steps. First, in `_prepare_batch` (on the reading thread), what is
idempotent on its own commits: the raw payloads (raw rows before anything made of them), the
canonical assets the batch introduces and the records it finds unchanged; the batch is then
made ready for the store. Then, in `_write_batch` (on the writer thread, `BatchWriter`, while the
next batch is prepared), its unified upserts, quarantined rows, drift findings, checkpoint and
run counters, in one transaction. A crash between the two replays the batch against raw rows
and assets already there (changing nothing); a crash after the second resumes from its
checkpoint: nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime

import attrs

from application.assets import assign_assets, file_symbol_assets
from application.conversion import convert_to_usd
from application.errors import (
    FileRefused,
    InjectedFailure,
    Interrupted,
    SourceSkipped,
    SourceUnavailable,
    StoreConflict,
    StoreUnavailable,
)
from application.known_prices import any_reference, compared_with_known, knows_other_sources
from application.pipeline import FailureInjector, IngestOptions, RunTotals, SourcePipeline
from application.ports import (
    BarBlock,
    Batch,
    Clock,
    IngestUnit,
    IngestUnits,
    Normalizer,
    PreparedRows,
    Progress,
)
from application.writer import BatchWriter
from domain.checkpoints import Checkpoint
from domain.cleaning import NUL_REASON
from domain.drift import DriftReport, detect_drift
from domain.errors import InvalidRecord
from domain.mentions import MentionFinder
from domain.plausibility import SUSPECT_MARK, Bounds, implausible, ranges_plausible
from domain.records import QuarantinedRecord, RawRecord, RecordKind, UnifiedRecord, without_nul
from domain.runs import FAILED_SHARE, RunStatus, SourceCounters


@attrs.define
class _Written:
    """What one source's committed batches did, across its batches. Written only by the thread
    that writes batches (`_write_batch`), read by the run once that thread is drained."""

    findings: set[tuple[str, str, str]] = attrs.Factory(set)
    read: int = 0  # records read
    loaded: int = 0  # inserted, updated or found unchanged
    written: int = 0  # inserted or updated
    requests: int = 0
    quarantined: int = 0
    first_reason: str | None = None


@attrs.define
class _SourceProgress:
    """What one source's run has seen so far. Each part has one writer, so no lock is needed:
    `newest` and `other_sources` are the preparing thread's (`_prepare_batch`), `counts` the
    writing thread's (`_Written`)."""

    newest: datetime | None = None
    started: float = attrs.Factory(time.monotonic)
    # each asset's other sources of prices, asked once a run (application.known_prices)
    other_sources: dict[int, tuple[str, ...]] = attrs.Factory(dict)
    # the canonical asset of each symbol a file's blocks named, found once a run
    file_assets: dict[str, int] = attrs.Factory(dict)
    counts: _Written = attrs.Factory(lambda: _Written())

    def saw(self, records: Sequence[UnifiedRecord]) -> None:
        for record in records:
            self.saw_moment(record.observed_at or record.published_at)

    def saw_moment(self, moment: datetime | None) -> None:
        if moment is not None and (self.newest is None or moment > self.newest):
            self.newest = moment


def normalize_batch(
    batch: Batch, normalizer: Normalizer, drift: DriftReport | None = None
) -> tuple[list[UnifiedRecord], list[QuarantinedRecord]]:
    """Normalize every raw record; a record that cannot be read is quarantined, the rest go on.

    Auto-mapped renames are applied to the view the normalizer gets; the raw record stays as
    received. When one batch holds the same record id twice, the later one wins.
    """
    records: dict[str, UnifiedRecord] = {}
    quarantined = list(batch.rejected)
    for raw in batch.raws:
        view = attrs.evolve(raw, payload=drift.remap(raw.payload)) if drift and drift.mapping else raw
        try:
            record = normalizer.normalize(view)
        except InvalidRecord as ex:
            quarantined.append(QuarantinedRecord(raw=raw, reason=str(ex)))
            continue
        records.pop(record.source_record_id, None)
        records[record.source_record_id] = record
    return list(records.values()), quarantined


def ingest_source(
    pipeline: SourcePipeline,
    run_id: int,
    uow_factory: IngestUnits,
    clock: Clock,
    options: IngestOptions | None = None,
    injector: FailureInjector | None = None,
    totals: RunTotals | None = None,
) -> tuple[RunStatus, str | None]:
    """Run one source to its end, one committed batch at a time; return its status and error.

    Batches are prepared (read, checked for drift, normalized, given their assets) on this
    thread while the previous one is written on another: the database's work on one batch
    overlaps Python's on the next. At most one batch is in flight, and batches commit in order.
    """
    options = options or IngestOptions()
    name = pipeline.name
    started = time.monotonic()
    with uow_factory() as uow:
        checkpoint = uow.checkpoints.get(name)
        uow.runs.start_source(run_id, name, clock())
        uow.commit()
    status, error, spent, injected = RunStatus.SUCCESS, None, SourceCounters(), None
    answered: dict[str, int] = {}
    progress = _SourceProgress()
    try:
        with BatchWriter() as writer:
            cursor = checkpoint.cursor if checkpoint else None
            for batch in pipeline.reader.read(cursor, run_id):
                prepare = functools.partial(
                    _prepare_batch, pipeline, batch, run_id, uow_factory, options, injector, progress
                )
                try:
                    prepared = _retried_on_conflict(prepare, clock)
                except FileRefused as ex:
                    if batch.refused is None:
                        raise
                    batch.refused(str(ex))  # nothing of it committed; the next batch goes on
                    continue
                # the batch before this one is committed once submit returns
                writer.submit(_write_batch, pipeline, prepared, run_id, uow_factory, clock, options, progress)
                if options.should_stop():
                    writer.drain()
                    raise Interrupted("interrupted: stopped after its last committed batch")
    except SourceUnavailable as ex:
        status, error, spent, answered = RunStatus.FAILED, str(ex), ex.counters, ex.responses
    except SourceSkipped as ex:
        status, error = RunStatus.SKIPPED, str(ex)
    except (InjectedFailure, Interrupted) as ex:
        status, error, injected = RunStatus.FAILED, f"{name}: {ex}", ex
    except StoreUnavailable:
        raise  # the database is gone: nothing can be recorded, the run's caller deals with it
    except Exception as ex:  # a fault in this source (a bug, an answer nobody foresaw): it fails,
        # the pass goes on to the next source, and the traceback reaches the log
        status, error = RunStatus.FAILED, f"{name}: error: {type(ex).__name__}: {ex}"
        options.observer.source_errored(name, run_id, error, "".join(traceback.format_exception(ex)))
    if (
        status is RunStatus.SUCCESS
        and progress.counts.read
        and progress.counts.quarantined >= progress.counts.read * FAILED_SHARE
    ):
        # half or more of what was read is quarantined: a failure, not a success
        status = RunStatus.FAILED
        share = "all" if not progress.counts.loaded else f"{progress.counts.quarantined:,} of"
        error = (
            f"{name}: {share} {progress.counts.read:,} records read were quarantined; "
            f"the first because {progress.counts.first_reason or 'of an unknown reason'}"
        )
    finished = clock()
    freshness = (finished - progress.newest).total_seconds() if progress.newest else None
    with uow_factory() as uow:
        duration_ms = int((time.monotonic() - started) * 1000)
        uow.runs.add_counters(run_id, name, spent)
        if answered:
            uow.runs.add_responses(run_id, name, answered)
        uow.runs.finish_source(run_id, name, status, error, finished, duration_ms, freshness)
        uow.records.prune_observations(name, options.observation_runs_kept)
        uow.commit()
    if totals is not None:
        totals.written += progress.counts.written
    options.observer.source_finished(name, run_id, status, error)
    if injected is not None:
        raise type(injected)(str(error)) from injected
    return status, error


@attrs.frozen
class _PreparedBatch:
    """A batch ready to write: normalized, given its assets, and made ready for the store."""

    batch: Batch
    fetched: int
    rows: PreparedRows
    unchanged: int
    drift: DriftReport
    first_reason: str | None = None
    started: float = attrs.Factory(time.monotonic)
    suspect_bars: int = 0  # stored marked far off the other sources' prices


CONFLICT_RETRIES = 3


def _retried_on_conflict(prepare: Callable[[datetime], _PreparedBatch], clock: Clock) -> _PreparedBatch:
    """The batch prepared, tried again when the database aborted it for another transaction's
    sake (a deadlock): what it wrote was rolled back, and preparing is idempotent."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return prepare(clock())
        except StoreConflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _prepare_batch(
    pipeline: SourcePipeline,
    batch: Batch,
    run_id: int,
    uow_factory: IngestUnits,
    options: IngestOptions,
    injector: FailureInjector | None,
    progress: _SourceProgress,
    now: datetime,
) -> _PreparedBatch:
    """Everything but the batch's normalized rows and checkpoint. Its raw payloads (raw first),
    the canonical assets it introduces and the records it finds unchanged commit here, before
    the batch: all are idempotent, so a batch that then fails to commit is replayed against
    them harmlessly."""
    started = time.monotonic()
    if batch.block is not None:
        prepared = _prepare_block(
            pipeline, batch, batch.block, run_id, uow_factory, options, injector, progress, now
        )
        if prepared is not None:
            return prepared
        # a record of it already stored, a figure out of bounds or prices other sources know:
        # the row path decides each record (to the same end for what the block would have done)
        batch = attrs.evolve(batch, raws=batch.block.raws(), block=None)
    fetched = len(batch.raws) + len(batch.rejected)
    if injector is not None:
        injector.check(fetched)
    batch = _without_nul(batch)
    with uow_factory() as uow:
        drift = _check_drift(pipeline, batch, uow, options)
        # a record whose stored version came from this very payload is unchanged: it is neither
        # normalized nor written again (only noted as seen by this run)
        latest = {raw.source_record_id: raw for raw in batch.raws}  # the later line wins
        stored = {} if batch.rewrite else uow.records.current_checksums(pipeline.name, list(latest))
        unchanged = sorted(key for key, raw in latest.items() if stored.get(key) == raw.checksum)
        if unchanged:
            skip = set(unchanged)
            batch = attrs.evolve(batch, raws=tuple(r for r in batch.raws if r.source_record_id not in skip))
            progress.saw_moment(uow.records.observe_unchanged(run_id, pipeline.name, unchanged))
        receipt = uow.records.store_raws(run_id, [*batch.raws, *(item.raw for item in batch.rejected)])
        records, quarantined = normalize_batch(batch, pipeline.normalizer, drift)
        records = assign_assets(_with_mentions(records, uow), uow, options.crossref)
        records = convert_to_usd(records, uow, options.usd)
        records, refused = _plausible(records, latest, now, options.bounds)
        quarantined += refused
        records, refusal = compared_with_known(
            records, uow, pipeline.name, progress.other_sources, options.bounds
        )
        if refusal is not None:  # before anything of the batch commits: the file is refused whole
            raise FileRefused(f"{pipeline.name}: {refusal}")
        uow.commit()
        rows = uow.records.prepare_rows(receipt, records, quarantined)
    progress.saw(records)
    return _PreparedBatch(
        batch=batch,
        fetched=fetched,
        rows=rows,
        unchanged=len(unchanged),
        drift=drift,
        first_reason=quarantined[0].reason if quarantined else None,
        suspect_bars=sum(1 for record in records if record.extra and SUSPECT_MARK in record.extra),
        started=started,
    )


def _prepare_block(
    pipeline: SourcePipeline,
    batch: Batch,
    block: BarBlock,
    run_id: int,
    uow_factory: IngestUnits,
    options: IngestOptions,
    injector: FailureInjector | None,
    progress: _SourceProgress,
    now: datetime,
) -> _PreparedBatch | None:
    """A batch read as columns, prepared as `_prepare_batch` prepares one (its raw lines and new
    assets committed here), without a record object: None, with nothing committed, when a rule
    needs its records one by one (the row path then takes it)."""
    started = time.monotonic()
    fetched = len(block)
    ranges = block.ranges()
    if not ranges_plausible(ranges, now, options.bounds):
        return None  # some figure is out of bounds: each record is judged, and quarantined by name
    with uow_factory() as uow:
        drift = _check_drift(pipeline, batch, uow, options)
        if not batch.rewrite and uow.records.current_checksums(pipeline.name, block.keys()):
            return None  # some are stored: which are unchanged, which updated, is the row path's
        names = block.names()
        unknown = {symbol: name for symbol, name in names.items() if symbol not in progress.file_assets}
        found = file_symbol_assets(pipeline.name, unknown, uow, options.crossref) if unknown else {}
        assets = {symbol: progress.file_assets.get(symbol) or found[symbol] for symbol in names}
        if knows_other_sources(sorted(set(assets.values())), uow, pipeline.name, progress.other_sources):
            bars = [(assets[symbol], moment, block.bar_seconds) for symbol, moment in block.bars()]
            if any_reference(bars, uow, progress.other_sources):
                return None  # compared bar by bar with the other sources' prices
        if injector is not None:
            injector.check(fetched)
        columns = block.columns(assets)
        receipt = uow.blocks.store_block_raws(run_id, columns)
        uow.commit()
        progress.file_assets.update(found)  # committed: the next batches need not ask again
        rows = uow.blocks.prepare_block(receipt, columns)
    progress.saw_moment(ranges.newest)
    return _PreparedBatch(batch=batch, fetched=fetched, rows=rows, unchanged=0, drift=drift, started=started)


def _plausible(
    records: list[UnifiedRecord], raws: dict[str, RawRecord], now: datetime, bounds: Bounds
) -> tuple[list[UnifiedRecord], list[QuarantinedRecord]]:
    """Records whose numbers and times can be true; the others quarantined with the figure."""
    kept: list[UnifiedRecord] = []
    refused: list[QuarantinedRecord] = []
    for record in records:
        reason = implausible(record, now, bounds)
        if reason is None:
            kept.append(record)
        else:
            refused.append(QuarantinedRecord(raw=raws[record.source_record_id], reason=reason))
    return kept, refused


def _without_nul(batch: Batch) -> Batch:
    """Every record of the batch storable: one holding U+0000 is quarantined with U+FFFD in its
    place (`NUL_REASON`); one already quarantined by its reader keeps its reason."""
    raws: list[RawRecord] = []
    rejected: list[QuarantinedRecord] = []
    for raw in batch.raws:
        rebuilt = without_nul(raw)
        if rebuilt is None:
            raws.append(raw)
        else:
            rejected.append(QuarantinedRecord(raw=rebuilt, reason=NUL_REASON))
    for item in batch.rejected:
        rebuilt = without_nul(item.raw)
        rejected.append(item if rebuilt is None else attrs.evolve(item, raw=rebuilt))
    return attrs.evolve(batch, raws=tuple(raws), rejected=tuple(rejected))


def _write_batch(
    pipeline: SourcePipeline,
    prepared: _PreparedBatch,
    run_id: int,
    uow_factory: IngestUnits,
    clock: Clock,
    options: IngestOptions,
    progress: _SourceProgress,
) -> None:
    """The batch's rows, drift findings, checkpoint and counters, in one transaction."""
    batch, drift = prepared.batch, prepared.drift
    with uow_factory() as uow:
        counts = uow.records.write_prepared(run_id, prepared.rows)
        new_findings = [
            finding
            for finding in drift.findings
            if (finding.kind.value, finding.field, finding.candidate) not in progress.counts.findings
        ]
        if drift.findings:
            uow.drifts.record(pipeline.name, run_id, drift.findings, clock())
        if batch.cursor is not None:
            uow.checkpoints.save(
                Checkpoint(source=pipeline.name, cursor=batch.cursor, run_id=run_id, updated_at=clock())
            )
        counters = batch.counters + SourceCounters(
            fetched=prepared.fetched,
            inserted=counts.inserted,
            updated=counts.updated,
            unchanged=counts.unchanged + prepared.unchanged,
            quarantined=counts.quarantined,
            drift_findings=len(new_findings),
            suspect_bars=prepared.suspect_bars,
        )
        uow.runs.add_counters(run_id, pipeline.name, counters)
        if batch.responses:
            uow.runs.add_responses(run_id, pipeline.name, batch.responses)
        uow.commit()
    if batch.committed is not None:
        batch.committed()
    progress.counts.read += prepared.fetched
    progress.counts.loaded += counts.inserted + counts.updated + counts.unchanged + prepared.unchanged
    progress.counts.written += counts.inserted + counts.updated
    progress.counts.quarantined += counts.quarantined
    progress.counts.requests += batch.counters.http_requests
    if progress.counts.first_reason is None and prepared.first_reason is not None:
        progress.counts.first_reason = prepared.first_reason
    position = batch.position
    options.observer.progress(
        pipeline.name,
        run_id,
        Progress(
            records=progress.counts.read,
            quarantined=progress.counts.quarantined,
            requests=progress.counts.requests,
            elapsed_seconds=time.monotonic() - progress.started,
            done=position[0] / position[1] if position and position[1] else None,
        ),
    )
    for finding in new_findings:
        progress.counts.findings.add((finding.kind.value, finding.field, finding.candidate))
        options.observer.drift_found(pipeline.name, run_id, finding)
    # the batch's own time, from the start of its preparation to its commit
    duration_ms = int((time.monotonic() - prepared.started) * 1000)
    options.observer.batch_committed(pipeline.name, run_id, attrs.evolve(counters, duration_ms=duration_ms))


MENTION_MAX_RANK = 200


def _with_mentions(records: list[UnifiedRecord], uow: IngestUnit) -> list[UnifiedRecord]:
    """Articles get the symbols of the assets they mention, in their title or categories."""
    if not any(record.kind is RecordKind.ARTICLE for record in records):
        return records
    finder = MentionFinder.of(uow.records.known_assets(MENTION_MAX_RANK))
    return [
        attrs.evolve(record, mentions=finder.find([record.title, *record.tags]))
        if record.kind is RecordKind.ARTICLE
        else record
        for record in records
    ]


def _check_drift(
    pipeline: SourcePipeline, batch: Batch, uow: IngestUnit, options: IngestOptions
) -> DriftReport:
    if pipeline.contract is None or not batch.raws:
        return DriftReport(findings=batch.findings)
    return detect_drift(
        pipeline.contract,
        [(raw.source_record_id, raw.payload) for raw in batch.raws],
        threshold=options.auto_map_confidence,
        previous=lambda ids: uow.records.latest_payloads(pipeline.name, ids),
        removal_share=options.drift_removal_share,
    )
