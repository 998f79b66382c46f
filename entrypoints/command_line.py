"""The `kaspero` command line's grammar: every command, option, environment variable and exit
code, as `--help` shows them. The handlers live in `entrypoints/cli.py`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from domain.runs import RunStatus
from entrypoints.version import kaspero_version

Handler = Callable[..., int]

EXIT_CODES = (
    "exit codes: 0 success; 1 a partial or failed run (or a refused file); 2 a usage or "
    "configuration error; 3 the database cannot be used"
)
DATABASE = (
    "DATABASE_URL (a PostgreSQL URL; unset: the project's embedded server when `make run` or "
    "`kaspero db start` runs it), KASPERO_DATA_DIR, LOG_LEVEL, LOG_FORMAT"
)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _epilog(environment: str) -> str:
    return f"environment: {environment}\n{EXIT_CODES}"


def build_parser(handlers: Mapping[str, Handler], source_kinds: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaspero",
        description="Crypto market data ETL and API: raw payloads kept, one unified PostgreSQL schema.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kaspero {kaspero_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(parent: Any, name: str, key: str, help_text: str, environment: str, **extra: Any) -> Any:
        sub = parent.add_parser(
            name,
            help=help_text,
            description=extra.pop("description", help_text),
            epilog=_epilog(environment),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handlers[key])
        return sub

    db = commands.add_parser("db", help="database set-up").add_subparsers(required=True, metavar="ACTION")
    command(db, "migrate", "db migrate", "apply pending migrations (yoyo, migrations/*.sql)", DATABASE)
    command(
        db, "start", "db start", "start the embedded PostgreSQL (when DATABASE_URL is unset) and print its URL",
        "KASPERO_DATA_DIR (where its data lives; default: .kaspero in the project)",
    )  # fmt: skip
    command(db, "stop", "db stop", "stop the embedded PostgreSQL", "KASPERO_DATA_DIR")

    etl = commands.add_parser("etl", help="extract, transform, load").add_subparsers(
        required=True, metavar="ACTION"
    )
    run = command(
        etl, "run", "etl run", "run the ETL: once (--once), or every ETL_SCHEDULE_MINUTES until SIGTERM/SIGINT",
        f"{DATABASE}, ETL_SOURCES, CSV_SOURCE_PATH, CSV_OPTIONS_PATH, CSV_WORKERS, RSS_SOURCE_URL, COINGECKO_*, "
        "COINPAPRIKA_*, ETL_FAIL_AFTER and the rest of the README's table",
    )  # fmt: skip
    run.add_argument(
        "--source", action="append", choices=source_kinds, metavar="KIND",
        help=f"a source kind to run ({', '.join(source_kinds)}); repeatable; default: ETL_SOURCES, else all",
    )  # fmt: skip
    run.add_argument("--once", action="store_true", help="one pass, then exit with its status")
    run.add_argument(
        "--json", action="store_true",
        help="print the run's summary as JSON (the default when stdout is not a terminal; a table when it is)",
    )  # fmt: skip
    run.add_argument(
        "--fail-after",
        type=int,
        metavar="N",
        help="failure injection: stop the run after N records (ETL_FAIL_AFTER)",
    )
    run.add_argument(
        "--full-refresh", action="store_true",
        help="read CSV files from their start, ignoring their checkpoints (idempotent: rows stored "
        "unchanged are not written again), so rows an older version quarantined load",
    )  # fmt: skip

    csv_commands = commands.add_parser("csv", help="price files").add_subparsers(
        required=True, metavar="ACTION"
    )
    inspecting = command(
        csv_commands, "inspect", "csv inspect",
        "show how files would load: layout, symbol and quote, first rows as stored; writes nothing",
        "CSV_OPTIONS_PATH (per-file options), ASSET_CROSSREF_PATH, USD_QUOTES; needs no database",
        description="A dry run of the CSV reader: per file, the layout it detects (delimiter, lines "
        "skipped, header or headerless layout, column mapping, date form and order, decimal marks, "
        "symbol and quote and where each came from, bar interval) and the first rows as they would "
        "be stored, or why the file is refused.",
    )  # fmt: skip
    inspecting.add_argument("files", nargs="+", type=Path, metavar="FILE", help="CSV files to inspect")
    inspecting.add_argument("--rows", type=positive, default=5, help="rows to show per file (default 5)")
    inspecting.add_argument("--json", action="store_true", help="print JSON, for scripts")

    quarantine = commands.add_parser("quarantine", help="records that could not be loaded").add_subparsers(
        required=True, metavar="ACTION"
    )
    q_list = command(
        quarantine, "list", "quarantine list", "quarantined records, newest first, with the reason and the payload",
        DATABASE,
    )  # fmt: skip
    q_list.add_argument("--source", help="only this source, e.g. csv:prices")
    q_list.add_argument(
        "--run", type=positive, dest="run_id", metavar="ID", help="quarantined (again) by this run"
    )
    q_list.add_argument("--reason", help="a case-insensitive substring of the reason")
    q_list.add_argument("--limit", type=positive, default=20, help="how many (default 20, at most 100)")
    q_list.add_argument("--json", action="store_true", help="print JSON, for scripts")

    replaying = command(
        quarantine, "replay", "quarantine replay",
        "read quarantined records again through the current rules and options (CSV_OPTIONS_PATH, "
        "PLAUSIBLE_*, USD_QUOTES...): those that pass now are stored, with their lineage to the raw row "
        "they were read from, and leave the quarantine; the others stay with the reason they fail for now",
        f"{DATABASE}, ETL_SOURCES, CSV_SOURCE_PATH, CSV_OPTIONS_PATH and the settings of the rules",
        description="A run of its own (trigger replay) in the run history; checkpoints are not touched. "
        "An entry whose record a later run stored (a newer version) is not read again.",
    )  # fmt: skip
    replaying.add_argument(
        "--source", help="only this source, e.g. csv:prices (default: every enabled source)"
    )
    replaying.add_argument("--reason", help="only entries whose reason holds this text (any case)")
    replaying.add_argument("--json", action="store_true", help="print the run as JSON, for scripts")

    runs = commands.add_parser("runs", help="run history").add_subparsers(required=True, metavar="ACTION")
    listing = command(
        runs, "list", "runs list", "recent runs, newest first, with per-source counters", DATABASE
    )
    listing.add_argument("--limit", type=positive, default=10, help="how many runs (default 10)")
    listing.add_argument(
        "--status", choices=[status.value for status in RunStatus], help="only runs with this status"
    )
    listing.add_argument("--source", help="only runs that touched this source, e.g. coingecko or csv:prices")
    comparing = command(
        runs, "compare", "runs compare",
        "per-source deltas and anomalies of run B against run A (default: the last two runs)", DATABASE,
    )  # fmt: skip
    comparing.add_argument("run_a", type=positive, nargs="?", metavar="A", help="the earlier run's id")
    comparing.add_argument("run_b", type=positive, nargs="?", metavar="B", help="the later run's id")

    covering = command(
        commands, "coverage", "coverage",
        "which buckets of each asset's history hold data, per source: covered ranges and the gaps between them",
        DATABASE,
    )  # fmt: skip
    covering.add_argument("symbols", nargs="+", metavar="SYMBOL", help="asset symbols (every asset of each)")
    covering.add_argument(
        "--interval", choices=("5m", "1h", "1d"), default="1d", help="bucket width (default 1d)"
    )
    covering.add_argument("--source", help="one source, e.g. csv:prices or coingecko")
    covering.add_argument(
        "--since", metavar="TIME", help="from this moment (ISO 8601): missing buckets before the data count"
    )
    covering.add_argument("--until", metavar="TIME", help="to this moment (ISO 8601)")
    covering.add_argument(
        "--json", action="store_true", help="print JSON (GET /assets/{id}/coverage's), for scripts"
    )

    backfilling = command(
        commands, "backfill", "backfill",
        "history of assets from the providers over a range: planned into windows (a request each), "
        "then taken here one by one with the same progress display as runs; run it again and an "
        "unfinished job of the same request goes on where it stopped",
        f"{DATABASE}, COINGECKO_*, COINPAPRIKA_*, <KIND>_* of the other providers",
    )  # fmt: skip
    backfilling.add_argument(
        "symbols", nargs="+", metavar="SYMBOL", help="asset symbols (every asset of each)"
    )
    backfilling.add_argument(
        "--source", action="append", metavar="KIND",
        help="a provider with history (repeatable); default: every one",
    )  # fmt: skip
    backfilling.add_argument("--interval", choices=("5m", "1h", "1d"), default="1d", help="default 1d")
    backfilling.add_argument("--since", metavar="DATE", help="from (ISO 8601; default: a year ago)")
    backfilling.add_argument("--until", metavar="DATE", help="to, exclusive (ISO 8601; default: now)")
    backfilling.add_argument(
        "--gaps", action="store_true", help="only the windows missing from what is stored"
    )
    backfilling.add_argument(
        "--queue-only", action="store_true",
        help="plan the job and leave its windows to the schedulers (POST /backfills does the same)",
    )  # fmt: skip
    backfilling.add_argument(
        "--json", action="store_true", help="print the job as JSON (GET /backfills/{id}'s)"
    )
    listing = command(
        commands, "backfills", "backfills", "the newest backfill jobs and their progress", DATABASE
    )  # fmt: skip
    listing.add_argument("--limit", type=positive, default=10, help="how many (default 10)")
    listing.add_argument("--json", action="store_true", help="print JSON (GET /backfills')")

    exporting = command(
        commands, "export", "export",
        "records (GET /data's columns), candles (GET /history's) or quarantined entries matching the "
        "filters, as one CSV, NDJSON or Parquet file",
        DATABASE,
        description="Streams a batch at a time (memory stays flat whatever the size); the file appears "
        "under its name only once complete (written beside it, then renamed).",
    )  # fmt: skip
    exporting.add_argument(
        "--of",
        choices=("records", "history", "quarantine"),
        default="records",
        help="what to export (default records)",
    )
    exporting.add_argument(
        "--format", choices=("csv", "ndjson", "parquet"), default="csv", help="the file format (default csv)"
    )
    exporting.add_argument("--output", "-o", metavar="FILE", help="where to write (default: standard output)")
    for name, text in (
        ("--symbol", "asset symbols (repeat, or comma-separated); history: every asset of each"),
        (
            "--source",
            "source names, e.g. csv:prices (repeat, or comma-separated); history and quarantine: one",
        ),
        ("--quote-currency", "records: quote currencies (repeat, or comma-separated)"),
    ):
        exporting.add_argument(name, action="append", default=[], help=text)
    exporting.add_argument("--kind", choices=("market", "article"), help="records: only this kind")
    exporting.add_argument(
        "--start", metavar="TIME", help="records: published_at, history: observed on or after (ISO 8601)"
    )
    exporting.add_argument("--end", metavar="TIME", help="on or before (ISO 8601); not before --start")
    exporting.add_argument(
        "--asset-id",
        type=positive,
        action="append",
        default=[],
        metavar="ID",
        help="history: an asset by id (repeat)",
    )
    exporting.add_argument(
        "--interval", choices=("5m", "1h", "1d"), help="history: bucket width (default 1d)"
    )
    exporting.add_argument("--reason", help="quarantine: a case-insensitive substring of the reason")
    command(
        commands, "serve", "serve", "serve the API with gunicorn (gthread workers)",
        f"{DATABASE}, API_HOST, API_PORT, WEB_CONCURRENCY, API_THREADS, API_KEYS, API_READ_REQUIRES_KEY",
    )  # fmt: skip
    scheduler = command(
        commands, "scheduler", "scheduler",
        "run due sources every ETL_SCHEDULE_MINUTES and queued POST /runs requests, until SIGTERM",
        f"{DATABASE}, ETL_SOURCES, ETL_SCHEDULE_MINUTES(_<KIND>), ETL_SCHEDULE_JITTER_SECONDS",
    )  # fmt: skip
    scheduler.add_argument("--wait-first", action="store_true", help="first pass after one interval, not now")
    command(
        commands, "run", "run",
        "everything (what `make run` runs): database, migrations, one ETL pass, then scheduler and API until Ctrl-C",
        f"{DATABASE}, API_HOST, API_PORT and every ETL variable",
    )  # fmt: skip
    return parser
