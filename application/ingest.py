"""The ETL use case: read each source in batches, normalize, and commit each batch whole.

A batch's raw rows, unified upserts, quarantined rows, checkpoint and run counters commit in
one transaction, so a crash between batches loses nothing and a replayed batch changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs

from application.errors import InjectedFailure, SourceUnavailable
from application.ports import (
    Batch,
    Clock,
    Normalizer,
    SourceReader,
    UnitOfWorkFactory,
)
from domain.checkpoints import Checkpoint
from domain.errors import InvalidRecord
from domain.records import QuarantinedRecord, UnifiedRecord
from domain.runs import EtlRun, RunStatus, RunTrigger, SourceCounters, overall_status


@attrs.frozen
class SourcePipeline:
    """A source's reader paired with the normalizer for what it reads."""

    reader: SourceReader
    normalizer: Normalizer

    @property
    def name(self) -> str:
        return self.reader.source.name


@attrs.define
class FailureInjector:
    """Raises `InjectedFailure` once a run has processed more than `after` records.

    Controlled failure for resilience tests and drills: the batch in flight is not committed,
    exactly as if the process had died there.
    """

    after: int | None = None
    seen: int = 0

    def check(self, batch_size: int) -> None:
        if self.after is None:
            return
        self.seen += batch_size
        if self.seen > self.after:
            raise InjectedFailure(f"failure injected after {self.after} records (ETL_FAIL_AFTER)")


def normalize_batch(
    batch: Batch, normalizer: Normalizer
) -> tuple[list[UnifiedRecord], list[QuarantinedRecord]]:
    """Normalize every raw record; a record that cannot be read is quarantined, the rest go on.

    When one batch holds the same record id twice, the later one wins: a source's later line
    or element is its newer word.
    """
    records: dict[str, UnifiedRecord] = {}
    quarantined = list(batch.rejected)
    for raw in batch.raws:
        try:
            record = normalizer.normalize(raw)
        except InvalidRecord as ex:
            quarantined.append(QuarantinedRecord(raw=raw, reason=str(ex)))
            continue
        records.pop(record.source_record_id, None)
        records[record.source_record_id] = record
    return list(records.values()), quarantined


def ingest_source(
    pipeline: SourcePipeline,
    run_id: int,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    injector: FailureInjector | None = None,
) -> tuple[RunStatus, str | None]:
    """Run one source to its end, one committed batch at a time; return its status and error."""
    name = pipeline.name
    started = time.monotonic()
    with uow_factory() as uow:
        checkpoint = uow.checkpoints.get(name)
        uow.runs.start_source(run_id, name, clock())
        uow.commit()
    status, error, spent, injected = RunStatus.SUCCESS, None, SourceCounters(), None
    try:
        cursor = checkpoint.cursor if checkpoint else None
        for batch in pipeline.reader.read(cursor, run_id):
            _commit_batch(pipeline, batch, run_id, uow_factory, clock, injector)
    except SourceUnavailable as ex:
        status, error, spent = RunStatus.FAILED, str(ex), ex.counters
    except InjectedFailure as ex:
        status, error, injected = RunStatus.FAILED, f"{name}: {ex}", ex
    with uow_factory() as uow:
        duration_ms = int((time.monotonic() - started) * 1000)
        uow.runs.add_counters(run_id, name, spent)
        uow.runs.finish_source(run_id, name, status, error, clock(), duration_ms)
        uow.commit()
    if injected is not None:
        raise InjectedFailure(str(error)) from injected
    return status, error


def _commit_batch(
    pipeline: SourcePipeline,
    batch: Batch,
    run_id: int,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    injector: FailureInjector | None,
) -> None:
    records, quarantined = normalize_batch(batch, pipeline.normalizer)
    raws = [*batch.raws, *(item.raw for item in batch.rejected)]
    if injector is not None:
        injector.check(len(raws))
    with uow_factory() as uow:
        counts = uow.records.load_batch(run_id, raws, records, quarantined)
        uow.checkpoints.save(
            Checkpoint(source=pipeline.name, cursor=batch.cursor, run_id=run_id, updated_at=clock())
        )
        uow.runs.add_counters(
            run_id,
            pipeline.name,
            batch.counters
            + SourceCounters(
                fetched=len(raws),
                inserted=counts.inserted,
                updated=counts.updated,
                unchanged=counts.unchanged,
                quarantined=counts.quarantined,
            ),
        )
        uow.commit()


def run_etl(
    pipelines: Sequence[SourcePipeline],
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    trigger: RunTrigger,
    fail_after: int | None = None,
) -> EtlRun:
    """Record a run, ingest every source in turn, and close the run with its overall status.

    One source failing does not stop the others; the run is then `partial`.
    """
    with uow_factory() as uow:
        run_id = uow.runs.start(trigger, clock())
        uow.commit()
    injector = FailureInjector(after=fail_after)
    outcomes: list[tuple[RunStatus, str | None]] = []
    try:
        for pipeline in pipelines:
            outcomes.append(ingest_source(pipeline, run_id, uow_factory, clock, injector))
    except InjectedFailure as ex:
        # a drill of a crash: the run stops here and is recorded as failed, later sources unrun
        outcomes = [(RunStatus.FAILED, f"run stopped: {ex}")]
    status = overall_status([source_status for source_status, _ in outcomes])
    error = "; ".join(source_error for _, source_error in outcomes if source_error) or None
    with uow_factory() as uow:
        uow.runs.finish(run_id, status, error, clock())
        run = uow.runs.get(run_id)
        uow.commit()
    assert run is not None
    return run
