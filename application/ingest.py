"""The ETL use case: a run over its sources, one after another (or several at once elsewhere,
through the fan-out), each one's outcome in the run, and the run closed with its overall status.

How one source's batches are read and committed: `application.batches`; what a run is given:
`application.pipeline`; closing runs whose process died: `application.recovery`.
"""

from __future__ import annotations

from collections.abc import Sequence

from application.batches import ingest_source
from application.errors import InjectedFailure, Interrupted
from application.pipeline import FailureInjector, IngestOptions, RunTotals, SourcePipeline
from application.ports import Clock, IngestUnits, QuotedSource, SourceLocks, SourceOutcome
from application.recovery import run_lock_name
from domain.runs import EtlRun, RunStatus, RunTrigger, overall_status


def run_etl(
    pipelines: Sequence[SourcePipeline],
    uow_factory: IngestUnits,
    clock: Clock,
    trigger: RunTrigger,
    options: IngestOptions | None = None,
    locks: SourceLocks | None = None,
) -> EtlRun:
    """Record a run, ingest every source in turn, and close the run with its overall status.

    One source failing does not stop the others; the run is then `partial`. With `locks`, the
    run holds a lock named after it while it lives, so `close_abandoned_runs` can tell a run
    whose process died (SIGKILL, a lost machine) from one still going.
    """
    options = options or IngestOptions()
    with uow_factory() as uow:
        run_id = uow.runs.start(trigger, clock())
        uow.commit()
    if locks is None:
        return _run(pipelines, run_id, uow_factory, clock, options)
    with locks.hold(run_lock_name(run_id)):
        return _run(pipelines, run_id, uow_factory, clock, options)


def _run(
    pipelines: Sequence[SourcePipeline],
    run_id: int,
    uow_factory: IngestUnits,
    clock: Clock,
    options: IngestOptions,
) -> EtlRun:
    injector = FailureInjector(after=options.fail_after, named=options.fail_after_named)
    totals = RunTotals()
    outcomes: list[tuple[RunStatus, str | None]] = []
    pipelines, side_by_side = arrange(pipelines)
    elsewhere = _fanned_out(pipelines, side_by_side, options)
    try:
        for pipeline in pipelines:
            if pipeline.name not in elsewhere:
                outcomes.append(
                    ingest_source(pipeline, run_id, uow_factory, clock, options, injector, totals)
                )
            elif pipeline.name == elsewhere[0] and options.fan_out is not None:
                # the sources run elsewhere run together, where the first of them stands in line
                fanned = options.fan_out.run(elsewhere, run_id, options.should_stop, options.observer)
                outcomes.extend(_settle(fanned, run_id, uow_factory, clock, totals, options))
    except (InjectedFailure, Interrupted) as ex:
        # a drill of a crash, or a graceful stop: the run ends here, failed, later sources unrun
        outcomes = [(RunStatus.FAILED, f"run stopped: {ex}")]
    status = overall_status([source_status for source_status, _ in outcomes])
    error = "; ".join(source_error for _, source_error in outcomes if source_error) or None
    with uow_factory() as uow:
        # once per run, after every source: ten files loaded in one run are one refresh, not ten
        uow.maintenance.refresh_after_load(totals.written)
        if options.history_retention is not None:
            cutoff = clock() - options.history_retention
            dropped = uow.maintenance.drop_history_before(cutoff)
            if dropped:
                options.observer.history_dropped(dropped, cutoff)
        uow.runs.finish(run_id, status, error, clock())
        run = uow.runs.get(run_id)
        uow.commit()
    assert run is not None
    return run


def arrange(pipelines: Sequence[SourcePipeline]) -> tuple[list[SourcePipeline], set[str]]:
    """The order a run reads its sources in, and which of them may run side by side.

    A file quoted in another asset (ETC/BTC) is converted through the USD prices the other
    sources hold for its bars: it runs after every other source, in line. Files quoted in USD
    need no one's prices: they come first and may run several at once (elsewhere, through the
    fan-out). API sources and feeds keep their place, in line."""
    converted = [p for p in pipelines if isinstance(p.reader, QuotedSource) and not p.reader.quoted_in_usd()]
    later = {id(pipeline) for pipeline in converted}
    ordered = [pipeline for pipeline in pipelines if id(pipeline) not in later] + converted
    side_by_side = {
        pipeline.name
        for pipeline in ordered
        if id(pipeline) not in later and isinstance(pipeline.reader, QuotedSource)
    }
    return ordered, side_by_side


def _fanned_out(
    pipelines: Sequence[SourcePipeline], side_by_side: set[str], options: IngestOptions
) -> list[str]:
    """The sources run elsewhere, several at once: those that may (`arrange`) and the fan-out
    takes, when there are two or more of them and no failure is being injected (a drill counts
    records in line)."""
    fan = options.fan_out
    if fan is None or options.fail_after is not None:
        return []
    taken = [
        pipeline.name for pipeline in pipelines if pipeline.name in side_by_side and fan.takes(pipeline.name)
    ]
    return taken if len(taken) > 1 else []


def _settle(
    fanned: Sequence[SourceOutcome],
    run_id: int,
    uow_factory: IngestUnits,
    clock: Clock,
    totals: RunTotals,
    options: IngestOptions,
) -> list[tuple[RunStatus, str | None]]:
    """The outcomes of sources run elsewhere, counted into the run; a source whose process died
    is closed `failed` here (it could not close itself), and a stop in any of them stops the run."""
    outcomes = []
    for outcome in fanned:
        totals.written += outcome.written
        if outcome.lost:
            with uow_factory() as uow:
                uow.runs.finish_source(
                    run_id, outcome.source, RunStatus.FAILED, outcome.error, clock(), 0, None
                )
                uow.commit()
            options.observer.source_finished(outcome.source, run_id, RunStatus.FAILED, outcome.error)
        outcomes.append((outcome.status, outcome.error))
    stopped = next((outcome for outcome in fanned if outcome.stopped), None)
    if stopped is not None:
        raise Interrupted(stopped.error or "interrupted")
    return outcomes
