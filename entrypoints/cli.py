"""The `kaspero` command line.

kaspero db migrate | db start | db stop
kaspero etl run [--source NAME]... [--once]
kaspero export [--of records|history|quarantine] [--format csv|ndjson|parquet] [--output FILE] [filters]
kaspero serve
kaspero scheduler
kaspero run          database, migrations, one ETL pass, scheduler and API, until Ctrl-C
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from application.assets import asset_coverage, export_history, history_assets
from application.browse import export_quarantined, export_records, find_quarantined
from application.comparison import compare
from application.errors import InvalidQuery, NotFound, StoreUnavailable
from application.queries import DataQuery, QuarantineQuery, split_values
from application.runs import list_runs
from domain.assets import HistoryQuery, Interval
from domain.backfill import BackfillJob, JobState
from domain.records import RecordKind
from domain.runs import EtlRun, RunStatus, RunTrigger
from entrypoints import bootstrap
from entrypoints.api.params import within_range
from entrypoints.api.render import backfill_job as render_backfill
from entrypoints.api.render import coverage as render_coverage
from entrypoints.api.render import dumps as api_dumps
from entrypoints.api.render import quarantined as render_quarantined
from entrypoints.command_line import build_parser
from entrypoints.exports import QUARANTINED as QUARANTINE_FILE
from entrypoints.exports import RECORDS as RECORD_FILE
from entrypoints.exports import ExportStopped, candle_shape, chunks
from entrypoints.inspection import inspection_json, inspection_text
from entrypoints.logs import configure_logging, redact
from entrypoints.observers import TerminalProgress
from entrypoints.scheduler import run_scheduler
from entrypoints.settings import Settings, SettingsError
from entrypoints.summary import print_summary
from entrypoints.supervisor import child_environment, gunicorn_command, run_everything

logger = structlog.get_logger("kaspero.cli")

# exit codes: 0 success, 1 a partial or failed run (or a refused file), 2 usage or configuration,
# 3 no database
EXIT_OK, EXIT_RUN_NOT_SUCCESSFUL, EXIT_CONFIG, EXIT_NO_DATABASE = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(HANDLERS, tuple(bootstrap.KINDS)).parse_args(argv)
    try:
        settings = Settings.from_environ()
    except SettingsError as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format)
    try:
        return int(args.handler(settings, args))
    except SettingsError as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailable as ex:
        where = "DATABASE_URL" if settings.database_url is not None else "the embedded PostgreSQL"
        print(f"kaspero: cannot use the database ({where}): {redact(str(ex))}", file=sys.stderr)
        return EXIT_NO_DATABASE


def _db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = bootstrap.resolve_database_url(settings)
    applied = bootstrap.migrate(url)
    logger.info("migrations_applied", applied=applied, count=len(applied))
    return EXIT_OK


def _db_start(settings: Settings, args: argparse.Namespace) -> int:
    if settings.database_url:
        print(
            "kaspero: `kaspero db start` manages only the embedded server, and DATABASE_URL points at "
            "another one: start that server by its own means (or unset DATABASE_URL for the embedded one)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    url = bootstrap.resolve_database_url(settings, start=True)
    print(url)
    return EXIT_OK


def _db_stop(settings: Settings, args: argparse.Namespace) -> int:
    stopped = bootstrap.embedded_server(settings).stop()
    logger.info("embedded_postgres_stopped" if stopped else "embedded_postgres_not_running")
    return EXIT_OK


def _etl_run(settings: Settings, args: argparse.Namespace) -> int:
    if args.fail_after is not None:
        settings = settings.model_copy(update={"etl_fail_after": args.fail_after})
    if args.once:
        return _one_pass(
            settings, args.source, RunTrigger.CLI, full_refresh=args.full_refresh, as_json=args.json
        )
    return _repeat(settings, args.source)


def _csv_inspect(settings: Settings, args: argparse.Namespace) -> int:
    kaspero = bootstrap.build(settings, in_memory=True)  # a dry run: nothing is written anywhere
    try:
        inspections = kaspero.inspect_csv(args.files, args.rows)
    finally:
        kaspero.close()
    if args.json:
        print(json.dumps([inspection_json(item) for item in inspections], indent=2, default=str))
    else:
        for item in inspections:
            print(inspection_text(item))
    return EXIT_RUN_NOT_SUCCESSFUL if any(item.refusal for item in inspections) else EXIT_OK


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    """Plan (or resume) a backfill job, then work its windows here until they are all settled."""
    try:
        since, until = _time_range((args.since, "--since"), (args.until, "--until"))
    except ValueError as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    kaspero = _build(settings)
    try:
        job_id = kaspero.backfill(args.symbols, args.source, args.interval, since, until, args.gaps)
        if not args.queue_only:
            _work_job(kaspero, job_id)
        job = kaspero.backfills.job(job_id)
    except InvalidQuery as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        kaspero.close()
    assert job is not None
    if args.json or not sys.stdout.isatty():
        print(json.dumps(json.loads(api_dumps(render_backfill(job))), indent=2))
    else:
        _print_job(job)
    if args.queue_only:
        return EXIT_OK
    return EXIT_OK if job.state is JobState.SUCCESS else EXIT_RUN_NOT_SUCCESSFUL


def _work_job(kaspero: bootstrap.Kaspero, job_id: int) -> None:
    """Passes over the queue until this job's windows are all settled (windows other workers hold
    are theirs: wait for them), or a pass finds nothing it can take."""
    display = TerminalProgress() if sys.stderr.isatty() else None
    with display or nullcontext():
        if display is not None:
            kaspero.observer = display
        settled = -1
        while True:
            run = kaspero.work_backfill()
            job = kaspero.backfills.job(job_id)
            if job is None or job.finished_at is not None:
                return
            if run is None:
                if not job.windows.running:
                    return
                time.sleep(0.5)  # another worker holds the last windows: wait for it to settle them
            elif job.windows.settled == settled and run.status is RunStatus.FAILED:
                # a whole pass settled nothing (a provider down, the plan refusing every key): said,
                # and left to the schedulers or a later run, rather than retried here for ever
                print(f"kaspero: backfill {job_id} made no progress this pass: {run.error}", file=sys.stderr)
                return
            settled = job.windows.settled


def _print_job(job: BackfillJob) -> None:
    counts = job.windows
    print(
        f"backfill {job.id}: {job.state.value}; {counts.settled}/{counts.total} windows settled "
        f"({counts.done} stored, {counts.empty} empty, {counts.refused} refused, {counts.failed} failed); "
        f"{job.bars:,} bars, {job.requests:,} requests"
    )
    for problem in job.problems:
        print(f"  not planned: {problem}")
    for error in job.errors:
        print(f"  error: {error}")


def _backfills(settings: Settings, args: argparse.Namespace) -> int:
    kaspero = _build(settings)
    try:
        jobs = kaspero.backfills.jobs(args.limit)
    finally:
        kaspero.close()
    if args.json or not sys.stdout.isatty():
        print(json.dumps(json.loads(api_dumps([render_backfill(job) for job in jobs])), indent=2))
        return EXIT_OK
    if not jobs:
        print("no backfill jobs")
    for job in jobs:
        _print_job(job)
    return EXIT_OK


def _quarantine_list(settings: Settings, args: argparse.Namespace) -> int:
    kaspero = _build(settings)
    try:
        query = QuarantineQuery(
            source=args.source, run_id=args.run_id, reason=args.reason, page_size=min(100, args.limit)
        )
        page = find_quarantined(kaspero.quarantine, query)
    finally:
        kaspero.close()
    if args.json:
        print(json.dumps([render_quarantined(item) for item in page.items], indent=2, default=str))
        return EXIT_OK
    print(f"{page.total_items} quarantined" + (f", newest {len(page.items)}:" if page.items else ""))
    for item in page.items:
        print(
            f"  #{item.id} {item.source} {item.source_record_id} (runs {item.first_run_id}-{item.last_run_id})"
        )
        print(f"      reason: {item.reason}")
        print(f"      payload: {json.dumps(item.payload, default=str)[:300]}")
    return EXIT_OK


def _quarantine_replay(settings: Settings, args: argparse.Namespace) -> int:
    """Quarantined records read again through the current rules and options: a `replay` run."""
    kaspero = _build(settings)
    try:
        before = find_quarantined(kaspero.quarantine, QuarantineQuery(source=args.source, page_size=1))
        if sys.stderr.isatty():
            with TerminalProgress() as display:
                kaspero.observer = display
                run = kaspero.replay_quarantine(args.source, args.reason)
        else:
            run = kaspero.replay_quarantine(args.source, args.reason)
        after = find_quarantined(kaspero.quarantine, QuarantineQuery(source=args.source, page_size=1))
    except NotFound as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        kaspero.close()
    _report(run, args.json or not sys.stdout.isatty())
    print(
        f"quarantine{' of ' + args.source if args.source else ''}: {before.total_items} entries before, "
        f"{after.total_items} after",
        file=sys.stderr,
    )
    return EXIT_OK if run.status is RunStatus.SUCCESS else EXIT_RUN_NOT_SUCCESSFUL


def _coverage(settings: Settings, args: argparse.Namespace) -> int:
    try:
        start, end = _time_range((args.since, "--since"), (args.until, "--until"))
    except ValueError as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    kaspero = _build(settings)
    try:
        assets = history_assets(kaspero.uow_factory, symbols=tuple(args.symbols))
        found = [
            asset_coverage(
                kaspero.uow_factory,
                kaspero.coverage,
                asset_id,
                Interval(args.interval),
                args.source,
                start,
                end,
                kaspero.backfills,
            )
            for asset_id in assets
        ]
    except (NotFound, InvalidQuery) as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        kaspero.close()
    if args.json:
        # the API's own encoding (ISO 8601 moments), indented for people
        print(json.dumps(json.loads(api_dumps([render_coverage(item) for item in found])), indent=2))
        return EXIT_OK
    for item in found:
        print(f"{item.asset.symbol} (asset {item.asset.id}), {item.interval.value} buckets:")
        if not item.sources:
            print("  no data")
        for source in item.sources:
            first = source.covered[0].start.isoformat() if source.covered else "-"
            last = source.covered[-1].end.isoformat() if source.covered else "-"
            print(
                f"  {source.source}: {source.buckets:,} held from {first} to {last}, "
                f"{len(source.covered)} range(s), {source.missing:,} missing in {len(source.gaps)} gap(s)"
            )
            for gap in source.gaps[:20]:
                print(f"      gap {gap.start.isoformat()} .. {gap.end.isoformat()} ({gap.buckets:,})")
            if len(source.gaps) > 20:
                print(f"      … {len(source.gaps) - 20} more (--json for all)")
            for span in source.empty:
                print(
                    f"      confirmed empty {span.start.isoformat()} .. {span.end.isoformat()} ({span.buckets:,})"
                )
    return EXIT_OK


def _export(settings: Settings, args: argparse.Namespace) -> int:
    """`kaspero export --of records|history|quarantine`: the filters of the matching endpoint."""
    try:
        start, end = _time_range((args.start, "--start"), (args.end, "--end"))
        symbols, sources = _values(args.symbol, "--symbol"), _values(args.source, "--source")
        if args.of == "history" and len(sources) > 1:
            raise ValueError("a history is of one source (or consensus): give --source once")
        if args.of != "history" and (args.interval or args.asset_id):
            raise ValueError("--interval and --asset-id are for --of history")
    except ValueError as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    kaspero = _build(settings)
    try:
        if args.of == "quarantine":
            query = QuarantineQuery(source=sources[0] if sources else None, reason=args.reason)
            parts = chunks(export_quarantined(kaspero.quarantine, query), args.format, QUARANTINE_FILE)
        elif args.of == "history":
            assets = history_assets(kaspero.uow_factory, tuple(args.asset_id), symbols)
            history = HistoryQuery(
                Interval(args.interval or "1d"), start, end, sources[0] if sources else None,
                suspect=settings.suspect_bar_pct / 100,
            )  # fmt: skip
            parts = chunks(
                export_history(kaspero.uow_factory, assets, history), args.format, candle_shape(assets)
            )
        else:
            records = DataQuery(
                kind=RecordKind(args.kind) if args.kind else None,
                symbol=symbols,
                source=sources,
                quote_currency=tuple(
                    value.upper() for value in _values(args.quote_currency, "--quote-currency")
                ),
                start_date=start,
                end_date=end,
            )  # in /data's default order: newest first
            parts = chunks(export_records(kaspero.reader, records), args.format, RECORD_FILE)
        written = export_to(parts, args.output)
    except (NotFound, InvalidQuery) as ex:
        print(f"kaspero: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    except ExportStopped as ex:
        left = f" (nothing left at {args.output})" if args.output else ""
        print(f"kaspero: export stopped{left}: {ex}", file=sys.stderr)
        return EXIT_RUN_NOT_SUCCESSFUL
    finally:
        kaspero.close()
    logger.info("exported", of=args.of, bytes=written, output=args.output or "stdout", format=args.format)
    return EXIT_OK


def _values(given: list[str], option: str) -> tuple[str, ...]:
    """A filter's values, repeated or comma-separated, by `GET /data`'s own rule."""
    try:
        return split_values(given)
    except ValueError as ex:
        raise ValueError(f"{option} {ex}") from None


def _time_range(
    first: tuple[str | None, str], last: tuple[str | None, str]
) -> tuple[datetime | None, datetime | None]:
    """Two options' times (text, option name), the first not after the last (ValueError)."""
    start, end = _timestamp(*first), _timestamp(*last)
    if start and end and start > end:
        raise ValueError(f"{first[1]} must not be after {last[1]}")
    return start, end


def _timestamp(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name}: {text!r} is not an ISO 8601 time (e.g. 2024-01-31 or 2024-01-31T12:00:00Z)"
        ) from None
    return within_range(value if value.tzinfo else value.replace(tzinfo=UTC))


def export_to(parts: Iterable[bytes], output: str | None) -> int:
    """Writes the chunks to `output` (beside it first, renamed when complete: a file under that
    name is always whole) or to standard output; the bytes written."""
    written = 0
    if output is None:
        for part in parts:
            sys.stdout.buffer.write(part)
            written += len(part)
        sys.stdout.buffer.flush()
        return written
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as handle:
            for part in parts:
                handle.write(part)
                written += len(part)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _scheduler(settings: Settings, args: argparse.Namespace) -> int:
    stop = _stop_event()
    kaspero = _build(settings)
    try:
        run_scheduler(kaspero, stop, wait_first=args.wait_first)
    finally:
        kaspero.close()
    return EXIT_OK


def _one_pass(
    settings: Settings,
    sources: Sequence[str] | None,
    trigger: RunTrigger,
    database_url: str | None = None,
    full_refresh: bool = False,
    should_stop: Callable[[], bool] | None = None,
    as_json: bool = False,
) -> int:
    kaspero = _build(settings, database_url)
    try:
        if sys.stderr.isatty():  # a live display per source while it works
            with TerminalProgress() as display:
                kaspero.observer = display
                run = kaspero.run_etl(sources, trigger, full_refresh=full_refresh, should_stop=should_stop)
        else:  # a `progress` log event every few seconds instead
            run = kaspero.run_etl(sources, trigger, full_refresh=full_refresh, should_stop=should_stop)
    finally:
        kaspero.close()
    _report(run, as_json or not sys.stdout.isatty())
    return EXIT_OK if run.status is RunStatus.SUCCESS else EXIT_RUN_NOT_SUCCESSFUL


def _repeat(settings: Settings, sources: Sequence[str] | None) -> int:
    """A pass now and then every interval, until SIGTERM or SIGINT, which stop it after its
    batch in flight commits. (`kaspero scheduler` is the replica-safe form of this.)"""
    stop = _stop_event()
    kaspero = _build(settings)
    try:
        while not stop.is_set():
            _report(
                kaspero.run_etl(sources, RunTrigger.CLI, should_stop=stop.is_set), not sys.stdout.isatty()
            )
            stop.wait(settings.etl_schedule_minutes * 60)
    finally:
        kaspero.close()
    return EXIT_OK


def _runs_list(settings: Settings, args: argparse.Namespace) -> int:
    kaspero = _build(settings)
    try:
        status = RunStatus(args.status) if args.status else None
        runs = list_runs(kaspero.uow_factory, args.limit, status, args.source)
    finally:
        kaspero.close()
    print(
        f"{'run':>6}  {'trigger':<8}  {'status':<8}  {'started (UTC)':<19}  source: fetched/inserted/updated/unchanged/quarantined"
    )
    for run in runs:
        started = run.started_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{run.id:>6}  {run.trigger.value:<8}  {run.status.value:<8}  {started:<19}")
        for item in run.sources:
            c = item.counters
            line = f"{c.fetched}/{c.inserted}/{c.updated}/{c.unchanged}/{c.quarantined} in {c.duration_ms} ms"
            print(
                f"{'':>48}{item.source}: {item.status.value} {line}"
                + (f"  ({item.error})" if item.error else "")
            )
    return EXIT_OK


def _runs_compare(settings: Settings, args: argparse.Namespace) -> int:
    kaspero = _build(settings)
    try:
        comparison = compare(kaspero.uow_factory, args.run_a, args.run_b)
    except NotFound as ex:
        print(f"kaspero: {ex} (see `kaspero runs list`)", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        kaspero.close()
    print(
        f"run {comparison.run_a.id} ({comparison.run_a.status.value}) -> run {comparison.run_b.id} ({comparison.run_b.status.value})"
    )
    for delta in comparison.sources:
        if delta.in_a is None or delta.in_b is None:
            absent = "A" if delta.in_a is None else "B"
            present = delta.status_b if delta.in_a is None else delta.status_a
            print(
                f"  {delta.source}: absent from run {absent} ({present.value if present else '-'} in the other)"
            )
            continue
        changed = {name: value for name, value in delta.deltas.items() if value}
        status = f"{delta.status_a.value if delta.status_a else '-'} -> {delta.status_b.value if delta.status_b else '-'}"
        print(
            f"  {delta.source}: {status}; "
            + (", ".join(f"{k} {v:+d}" for k, v in changed.items()) or "no change")
        )
    print("anomalies:" if comparison.anomalies else "anomalies: none")
    for anomaly in comparison.anomalies:
        print(f"  [{anomaly.severity.value}] {anomaly.source} {anomaly.metric}: {anomaly.explanation}")
    return EXIT_OK


def _build(settings: Settings, database_url: str | None = None) -> bootstrap.Kaspero:
    """Kaspero over a database whose schema this code can use, or a clear refusal."""
    bootstrap.check_database(database_url or bootstrap.resolve_database_url(settings))
    kaspero = bootstrap.build(settings, database_url)
    pending = kaspero.probe.pending_migrations()
    if pending:
        kaspero.close()
        raise SettingsError(f"the database lacks migrations {', '.join(pending)}: run `kaspero db migrate`")
    return kaspero


def _report(run: EtlRun, as_json: bool) -> None:
    """The run's summary, once: JSON for scripts (`--json`, or when stdout is not a terminal),
    a table for people."""
    summary = {
        "run_id": run.id,
        "trigger": run.trigger.value,
        "status": run.status.value,
        "error": run.error,
        "sources": {
            item.source: {
                "status": item.status.value,
                "fetched": item.counters.fetched,
                "inserted": item.counters.inserted,
                "updated": item.counters.updated,
                "unchanged": item.counters.unchanged,
                "quarantined": item.counters.quarantined,
                "duration_ms": item.counters.duration_ms,
                "error": item.error,
            }
            for item in run.sources
        },
    }
    log = logger.info if run.status is RunStatus.SUCCESS else logger.warning
    log("etl_run_finished", run_id=run.id, status=run.status.value, error=run.error)
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        print_summary(run)


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        logger.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    url = bootstrap.resolve_database_url(settings)
    os.execvpe(sys.executable, gunicorn_command(), child_environment(settings, url))
    return EXIT_OK  # pragma: no cover - exec does not return


def _run_all(settings: Settings, args: argparse.Namespace) -> int:
    """`make run`: everything up, serve until Ctrl-C, then stop what this command started."""
    return run_everything(settings, _stop_event(), _first_pass)


def _first_pass(settings: Settings, url: str, should_stop: Callable[[], bool]) -> int:
    return _one_pass(settings, None, RunTrigger.CLI, database_url=url, should_stop=should_stop)


HANDLERS = {
    "db migrate": _db_migrate,
    "db start": _db_start,
    "db stop": _db_stop,
    "etl run": _etl_run,
    "csv inspect": _csv_inspect,
    "quarantine list": _quarantine_list,
    "runs list": _runs_list,
    "runs compare": _runs_compare,
    "export": _export,
    "coverage": _coverage,
    "backfill": _backfill,
    "backfills": _backfills,
    "quarantine replay": _quarantine_replay,
    "serve": _serve,
    "scheduler": _scheduler,
    "run": _run_all,
}


if __name__ == "__main__":
    sys.exit(main())
