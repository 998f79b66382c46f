"""ingest-csv: `kaspero etl run --source csv` on a generated market-history file, against bare COPY.

Cases: first load, an unchanged rerun, a rerun after appending 10%. The reference is a bare
psycopg COPY of the same rows into one table, in the same run on the same server.
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

from benchmarks.harness import REPO, print_table, save, scratch_database, timed
from tests.support.market_csv import append_lines, market_lines, write_csv

ROWS = int(os.environ.get("BENCH_CSV_ROWS", "1000000"))
ASSETS = 50


def etl_pass(database_url: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database_url, "CSV_SOURCE_PATH": str(path), "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once", "--source", "csv"]
    wrapper = [sys.executable, "-c", _PEAK_RSS_WRAPPER, *command]
    with timed() as clock:
        done = subprocess.run(wrapper, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-2])
    peak_mb = float(lines[-1])
    source = summary["sources"][f"csv:{path.stem}"]
    return {"seconds": clock["seconds"], "peak_rss_mb": peak_mb, **source}


# runs the CLI as a child and prints its peak RSS after its output
_PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys;"
    "subprocess.run(sys.argv[1:], check=True);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


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
        load = etl_pass(url, path)
        rows.append(_row("first load", load, copy_rate))
        rows.append(_row("unchanged rerun", etl_pass(url, path), copy_rate))
        append_lines(path, appended)
        append = etl_pass(url, path)
        row = _row("append 10%", append, copy_rate)
        row["cost_vs_first"] = append["seconds"] / load["seconds"]
        rows.append(row)
    print_table(f"ingest-csv ({len(first):,} rows, {ASSETS} assets)", rows)
    save("ingest_csv", rows)
    return rows


def _row(case: str, result: dict[str, Any], copy_rate: float) -> dict[str, Any]:
    rate = result["fetched"] / result["seconds"] if result["fetched"] else None
    return {
        "case": case,
        "rows": result["fetched"],
        "seconds": result["seconds"],
        "rows_per_s": rate,
        "vs_copy": rate / copy_rate if rate else None,
        "inserted": result["inserted"],
        "unchanged": result["unchanged"],
        "peak_rss_mb": result["peak_rss_mb"],
    }


if __name__ == "__main__":
    main()
