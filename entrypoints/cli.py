"""The `kaspero` command line.

kaspero db migrate | db start | db stop
kaspero etl run [--source NAME]... [--once]
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from application.browse import find_quarantined
from application.comparison import compare
from application.errors import NotFound, StoreUnavailable
from application.queries import QuarantineQuery
from application.runs import list_runs
from domain.runs import EtlRun, RunStatus, RunTrigger
from entrypoints import bootstrap
from entrypoints.api.render import quarantined as render_quarantined
from entrypoints.inspection import inspection_json, inspection_text
from entrypoints.logs import configure_logging, redact
from entrypoints.scheduler import run_scheduler
from entrypoints.settings import SOURCE_KINDS, Settings, SettingsError
from entrypoints.supervisor import child_environment, gunicorn_command, run_everything

logger = structlog.get_logger("kaspero.cli")

# exit codes: 0 success, 1 a partial or failed run (or a refused file), 2 usage or configuration,
# 3 no database
EXIT_OK, EXIT_RUN_NOT_SUCCESSFUL, EXIT_CONFIG, EXIT_NO_DATABASE = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kaspero", description="Crypto market data ETL and API.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="database set-up").add_subparsers(required=True, metavar="ACTION")
    db.add_parser("migrate", help="apply pending migrations").set_defaults(handler=_db_migrate)
    db.add_parser("start", help="start the embedded PostgreSQL (no DATABASE_URL)").set_defaults(
        handler=_db_start
    )
    db.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(handler=_db_stop)

    etl = commands.add_parser("etl", help="extract, transform, load").add_subparsers(
        required=True, metavar="ACTION"
    )
    run = etl.add_parser("run", help="run the ETL: once, or every ETL_SCHEDULE_MINUTES")
    run.add_argument("--source", action="append", choices=SOURCE_KINDS, help="a source kind; repeatable")
    run.add_argument("--once", action="store_true", help="one pass, then exit with its status")
    run.add_argument(
        "--fail-after", type=int, metavar="N", help="failure injection: stop the run after N records"
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="read CSV files from their start, ignoring their checkpoints (idempotent: rows stored "
        "unchanged are not written again), so rows an older version quarantined load",
    )
    run.set_defaults(handler=_etl_run)

    csv_commands = commands.add_parser("csv", help="price files").add_subparsers(
        required=True, metavar="ACTION"
    )
    inspecting = csv_commands.add_parser(
        "inspect",
        help="show how files would load: layout, symbol and quote, first rows as stored; writes nothing",
        description="A dry run of the CSV reader: per file, the layout it detects (delimiter, lines "
        "skipped, header or headerless layout, column mapping, date form and order, decimal marks, "
        "symbol and quote and where each came from, bar interval) and the first rows as they would "
        "be stored, or why the file is refused. Needs no database. Reads CSV_OPTIONS_PATH and "
        "ASSET_CROSSREF_PATH. Exit codes: 0 every file understood, 1 a file refused, 2 usage.",
    )
    inspecting.add_argument("files", nargs="+", type=Path, metavar="FILE", help="CSV files to inspect")
    inspecting.add_argument("--rows", type=_positive, default=5, help="rows to show per file (default 5)")
    inspecting.add_argument("--json", action="store_true", help="print JSON, for scripts")
    inspecting.set_defaults(handler=_csv_inspect)

    quarantine = commands.add_parser("quarantine", help="records that could not be loaded").add_subparsers(
        required=True, metavar="ACTION"
    )
    q_list = quarantine.add_parser("list", help="quarantined records, newest first, with the reason")
    q_list.add_argument("--source", help="only this source, e.g. csv:prices")
    q_list.add_argument("--run", type=_positive, dest="run_id", help="quarantined (again) by this run id")
    q_list.add_argument("--reason", help="a case-insensitive substring of the reason")
    q_list.add_argument("--limit", type=_positive, default=20, help="how many (default 20, at most 100)")
    q_list.add_argument("--json", action="store_true", help="print JSON, for scripts")
    q_list.set_defaults(handler=_quarantine_list)

    runs = commands.add_parser("runs", help="run history").add_subparsers(required=True, metavar="ACTION")
    listing = runs.add_parser("list", help="recent runs, newest first, with per-source counters")
    listing.add_argument("--limit", type=_positive, default=10, help="how many runs (default 10)")
    listing.add_argument("--status", choices=[status.value for status in RunStatus])
    listing.add_argument("--source")
    listing.set_defaults(handler=_runs_list)
    comparing = runs.add_parser("compare", help="per-source deltas and anomalies of run B against run A")
    comparing.add_argument("run_a", type=int, nargs="?")
    comparing.add_argument("run_b", type=int, nargs="?")
    comparing.set_defaults(handler=_runs_compare)

    commands.add_parser("serve", help="serve the API with gunicorn").set_defaults(handler=_serve)
    scheduler = commands.add_parser("scheduler", help="run the ETL every ETL_SCHEDULE_MINUTES")
    scheduler.add_argument("--wait-first", action="store_true", help="first pass after one interval, not now")
    scheduler.set_defaults(handler=_scheduler)
    commands.add_parser("run", help="everything: database, migrations, ETL, scheduler, API").set_defaults(
        handler=_run_all
    )
    return parser


def _db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = bootstrap.resolve_database_url(settings)
    applied = bootstrap.migrate(url)
    logger.info("migrations_applied", applied=applied, count=len(applied))
    return EXIT_OK


def _db_start(settings: Settings, args: argparse.Namespace) -> int:
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
        return _one_pass(settings, args.source, RunTrigger.CLI, full_refresh=args.full_refresh)
    return _repeat(settings, args.source)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


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
) -> int:
    kaspero = _build(settings, database_url)
    try:
        run = kaspero.run_etl(sources, trigger, full_refresh=full_refresh, should_stop=should_stop)
    finally:
        kaspero.close()
    _report(run)
    return EXIT_OK if run.status is RunStatus.SUCCESS else EXIT_RUN_NOT_SUCCESSFUL


def _repeat(settings: Settings, sources: Sequence[str] | None) -> int:
    """A pass now and then every interval, until SIGTERM or SIGINT, which stop it after its
    batch in flight commits. (`kaspero scheduler` is the replica-safe form of this.)"""
    stop = _stop_event()
    kaspero = _build(settings)
    try:
        while not stop.is_set():
            _report(kaspero.run_etl(sources, RunTrigger.CLI, should_stop=stop.is_set))
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


def _report(run: EtlRun) -> None:
    summary = {
        "run_id": run.id,
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
    log("etl_run_finished", **summary)
    print(json.dumps(summary), flush=True)


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


if __name__ == "__main__":
    sys.exit(main())
