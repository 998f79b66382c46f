"""ingest-csv: `kaspero etl run --source csv` on a generated market-history file, against bare COPY.

Cases: first load, an unchanged rerun, a rerun after appending 10%. Two references, in the
same run on the same server: a bare psycopg COPY of the same rows into one unindexed table (the
issue's yardstick), and PostgreSQL writing the loaded rows into empty copies of the ETL's own
three tables with their indexes (what this schema costs the database alone, `vs_schema`).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.harness import REPO, print_table, save, scratch_database, server_cpu, timed
from tests.support.market_csv import append_lines, market_lines, write_csv

ROWS = int(os.environ.get("BENCH_CSV_ROWS", "1000000"))
ASSETS = 1250  # 800 days of daily bars (and 10 % more to append): all of them in the past


def etl_pass(database_url: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database_url, "CSV_SOURCE_PATH": str(path), "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once", "--source", "csv"]
    wrapper = [sys.executable, "-c", _PEAK_RSS_WRAPPER, *command]
    database_before = server_cpu(database_url)
    with timed() as clock:
        done = subprocess.run(wrapper, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    database_after = server_cpu(database_url)
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-3])
    peak_mb, python_cpu = float(lines[-2]), float(lines[-1])
    source = summary["sources"][f"csv:{path.stem}"]
    database_cpu = (
        database_after - database_before
        if database_before is not None and database_after is not None
        else None
    )
    return {
        "seconds": clock["seconds"], "peak_rss_mb": peak_mb, "python_cpu_s": python_cpu,
        "postgres_cpu_s": database_cpu, **source,
    }  # fmt: skip


# runs the CLI as a child and prints, after its output, its peak RSS and then the CPU seconds it
# and its worker processes used (user and system): the Python side of a load
_PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys;"
    "subprocess.run(sys.argv[1:], check=True);"
    "used = resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(used.ru_maxrss / 1024);"
    "print(used.ru_utime + used.ru_stime)"
)


def export_pass(database_url: str, tmp: Path, format_: str) -> dict[str, Any]:
    """`kaspero export` of every record to a file: seconds, rows written, the process's peak RSS
    (flat whatever the row count: one batch of records and one chunk of bytes at a time)."""
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    output = tmp / f"export.{format_}"
    command = [
        sys.executable,
        "-m",
        "entrypoints.cli",
        "export",
        "--format",
        format_,
        "--output",
        str(output),
    ]
    with timed() as clock:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS_WRAPPER, *command], cwd=REPO, env=env, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
    if format_ == "parquet":
        import pyarrow.parquet as pq

        lines = pq.ParquetFile(output).metadata.num_rows
    else:
        with output.open("rb") as handle:
            lines = sum(1 for _ in handle) - (1 if format_ == "csv" else 0)
    size_mb = output.stat().st_size / 2**20
    output.unlink()
    return {
        "seconds": clock["seconds"],
        "rows": lines,
        "mb": size_mb,
        "peak_rss_mb": float(done.stdout.strip().splitlines()[-2]),
    }


def bare_copy(database_url: str, path: Path) -> float:
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "CREATE TABLE bench_copy (date text, symbol text, name text, open numeric, high numeric,"
            " low numeric, close numeric, volume numeric, market_cap numeric)"
        )
        with timed() as clock:
            with (
                path.open(encoding="utf-8") as handle,
                connection.cursor().copy("COPY bench_copy FROM STDIN") as copy,
            ):
                reader = csv.reader(handle)
                next(reader)
                for row in reader:
                    copy.write_row([cell or None for cell in row])
            connection.commit()
        connection.execute("DROP TABLE bench_copy")
        connection.commit()
    return clock["seconds"]


def python_copy(database_url: str, path: Path) -> float:
    """The reference of the bars: the same rows parsed in Python (csv.reader, Decimal, dates)
    and COPYed with write_row into one table with an index, as a loader at its leanest would."""
    from datetime import UTC, datetime
    from decimal import Decimal

    with psycopg.connect(database_url) as connection:
        connection.execute(
            "CREATE TABLE bench_parsed (observed_at timestamptz, symbol text, name text, open numeric, high numeric,"
            " low numeric, close numeric, volume numeric, market_cap numeric)"
        )
        connection.execute("CREATE INDEX ON bench_parsed (symbol, observed_at)")
        with timed() as clock:
            with (
                path.open(encoding="utf-8") as handle,
                connection.cursor().copy("COPY bench_parsed FROM STDIN") as copy,
            ):
                reader = csv.reader(handle)
                next(reader)
                for date, symbol, name, *numbers in reader:
                    copy.write_row(
                        [
                            datetime.fromisoformat(date).replace(tzinfo=UTC),
                            symbol,
                            name,
                            *(Decimal(value) if value else None for value in numbers),
                        ]
                    )
            connection.commit()
        connection.execute("DROP TABLE bench_parsed")
        connection.commit()
    return clock["seconds"]


def many_files(url: str, tmp: Path) -> dict[str, Any]:
    """Ten files of 100,000 rows (`BENCH_CSV_FILES` × `BENCH_CSV_FILE_ROWS`) through one glob,
    each of other assets (exports of other coins: what a glob of many files usually holds; ten
    files of the same assets and days measure the comparison of every bar with the other files'
    instead, see benchmarks/README.md)."""
    files, per_file = (
        int(os.environ.get("BENCH_CSV_FILES", "10")),
        int(os.environ.get("BENCH_CSV_FILE_ROWS", "100000")),
    )
    folder = tmp / "many"
    folder.mkdir()
    for index in range(files):
        lines = list(
            market_lines(
                days=per_file // ASSETS, assets=ASSETS, seed=100 + index, first=index * (1 + ASSETS // 3)
            )
        )
        write_csv(folder / f"part{index:02d}.csv", lines)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CSV_SOURCE_PATH": str(folder / "*.csv"),
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once", "--json", "--source", "csv"]
    with timed() as clock:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    fetched = sum(item["fetched"] for item in summary["sources"].values())
    workers = os.environ.get("CSV_WORKERS") or str(len(os.sched_getaffinity(0)))
    return {
        "seconds": clock["seconds"],
        "fetched": fetched,
        "sources": len(summary["sources"]),
        "workers": workers,
    }


def schema_floor(database_url: str) -> float:
    """What PostgreSQL alone spends writing the loaded rows into the ETL's own tables.

    The rows the first load wrote are copied, by plain INSERT ... SELECT, into empty tables
    with the same columns, indexes and asset references as `raw_csv_batches` (the raw lines, a
    row a batch), `unified_data` (whose bars are the history since migration 0022) and the
    candles: no Python, no staging, no upsert, no folding of bars into candles. The ETL cannot load faster than this.
    """
    tables = (
        ("raw_csv_batches", "floor_raw"),
        ("unified_data", "floor_unified"),
        ("market_candles", "floor_candles"),
    )
    with psycopg.connect(database_url) as connection:
        for source, floor in tables:
            connection.execute(f"CREATE TABLE {floor} (LIKE {source} INCLUDING ALL)")
        connection.execute(
            "ALTER TABLE floor_unified ADD FOREIGN KEY (asset_id) REFERENCES assets (id);"
            "ALTER TABLE floor_candles ADD FOREIGN KEY (asset_id) REFERENCES assets (id)"
        )
        connection.commit()
        with timed() as clock:
            for source, floor in tables:
                connection.execute(f"INSERT INTO {floor} OVERRIDING SYSTEM VALUE SELECT * FROM {source}")
            connection.commit()
        for _, floor in tables:
            connection.execute(f"DROP TABLE {floor}")
        connection.commit()
    return clock["seconds"]


def settle(database_url: str) -> None:
    """What autovacuum does after a bulk load (a million rows inserted crosses its insert
    threshold), done now, before the append is measured: left to itself, its VACUUM of
    `unified_data` and of the history was seen in `pg_stat_activity` running during
    the append, which then took from 8 s to 20 s for the same rows and code, depending on how
    much of the vacuum shared the two cores with it. A user appends after autovacuum is done."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) raw_csv_batches, unified_data, market_candles")


def main() -> list[dict[str, Any]]:
    days = ROWS // ASSETS
    lines = list(market_lines(days=days + days // 10, assets=ASSETS, seed=42))
    first, appended = lines[: days * ASSETS], lines[days * ASSETS :]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, scratch_database() as url:
        path = write_csv(Path(tmp) / "bench_history.csv", first)
        copy_seconds = bare_copy(url, path)
        copy_rate = len(first) / copy_seconds
        rows.append({"case": "reference: bare COPY", "rows": len(first), "seconds": copy_seconds,
                     "rows_per_s": copy_rate, "vs_copy": 1.0})  # fmt: skip
        parsed_seconds = python_copy(url, path)
        parsed_rate = len(first) / parsed_seconds
        rows.append({"case": "reference: parsed in Python, COPY", "rows": len(first), "seconds": parsed_seconds,
                     "rows_per_s": parsed_rate, "vs_copy": parsed_rate / copy_rate})  # fmt: skip
        load = etl_pass(url, path)
        floor_seconds = schema_floor(url)
        floor_rate = len(first) / floor_seconds
        rows.append({"case": "reference: the schema's own writes", "rows": len(first), "seconds": floor_seconds,
                     "rows_per_s": floor_rate, "vs_copy": floor_rate / copy_rate, "vs_schema": 1.0})  # fmt: skip
        rows.append(_row("first load", load, copy_rate, floor_rate))
        rows.append(_row("unchanged rerun", etl_pass(url, path), copy_rate))
        settle(url)
        append_lines(path, appended)
        append = etl_pass(url, path)
        row = _row("append 10%", append, copy_rate)
        row["cost_vs_first"] = append["seconds"] / load["seconds"]
        rows.append(row)
        many = many_files(url, Path(tmp))
        rate = many["fetched"] / many["seconds"]
        rows.append({"case": f"{many['sources']} files through one glob, {many['workers']} workers",
                     "rows": many["fetched"], "seconds": many["seconds"], "rows_per_s": rate,
                     "vs_copy": rate / copy_rate, "vs_one_file": rate / (len(first) / load["seconds"])})  # fmt: skip
        for item in rows:
            if item.get("rows_per_s") and item["case"] not in ("reference: bare COPY",):
                item["vs_parsed"] = item["rows_per_s"] / parsed_rate
        for format_ in ("csv", "ndjson", "parquet"):
            done = export_pass(url, Path(tmp), format_)
            rows.append({"case": f"export {format_} (every record, {done['mb']:,.0f} MB)", "rows": done["rows"],
                         "seconds": done["seconds"], "rows_per_s": done["rows"] / done["seconds"],
                         "peak_rss_mb": done["peak_rss_mb"]})  # fmt: skip
    print_table(f"ingest-csv ({len(first):,} rows, {ASSETS} assets)", rows)
    save("ingest_csv", rows)
    return rows


def _row(
    case: str, result: dict[str, Any], copy_rate: float, floor_rate: float | None = None
) -> dict[str, Any]:
    rate = result["fetched"] / result["seconds"] if result["fetched"] else None
    return {
        "case": case,
        "rows": result["fetched"],
        "seconds": result["seconds"],
        "rows_per_s": rate,
        "vs_copy": rate / copy_rate if rate else None,
        "vs_schema": rate / floor_rate if rate and floor_rate else None,
        "inserted": result["inserted"],
        "unchanged": result["unchanged"],
        "peak_rss_mb": result["peak_rss_mb"],
        # where the time went: CPU of the loader's processes and of the database server, a row
        "python_us_row": result["python_cpu_s"] / result["fetched"] * 1e6 if result["fetched"] else None,
        "postgres_us_row": (
            result["postgres_cpu_s"] / result["fetched"] * 1e6
            if result["fetched"] and result.get("postgres_cpu_s") is not None
            else None
        ),
    }


if __name__ == "__main__":
    main()
