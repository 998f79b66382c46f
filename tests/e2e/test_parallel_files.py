"""Several files of one glob load in worker processes at once (`CSV_WORKERS`): each its own
source with its own checkpoint, every row once, and a worker killed mid-file loses nothing."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, children_of, environment, kaspero

FILES = 4


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


def _files(folder: Path, days: int) -> dict[str, int]:
    """Each file its own stretch of days: files telling different prices for a coin on the same
    days would be refused (they cannot all be that coin)."""
    folder.mkdir()
    lines = {}
    for index in range(FILES):
        start = date(2019, 1, 1) + timedelta(days=index * days)
        written = list(market_lines(days=days, assets=60, seed=index, start=start))
        write_csv(folder / f"part{index}.csv", written)
        lines[f"csv:part{index}"] = len(written)
    return lines


def _two_workers(database_url: str, tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a run over the files of `_files`, two at a time."""
    return environment(
        DATABASE_URL=database_url, CSV_SOURCE_PATH=str(tmp_path / "many" / "*.csv"), CSV_WORKERS="2", **more
    )


def test_files_of_one_glob_load_at_once_each_its_own_source(clean_database: str, tmp_path: Path) -> None:
    expected = _files(tmp_path / "many", days=200)  # 12,000 rows a file
    env = _two_workers(clean_database, tmp_path, CSV_BATCH_SIZE="1000", PROGRESS_LOG_SECONDS="0.2")
    result = kaspero("etl", "run", "--once", "--json", "--source", "csv", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "success"
    assert {name: item["inserted"] for name, item in summary["sources"].items()} == expected
    # every row once, each file's own checkpoint at its end
    assert rows(clean_database, "SELECT source, count(*) FROM unified_data GROUP BY 1 ORDER BY 1") == sorted(
        expected.items()
    )
    sizes = {f"csv:part{i}": (tmp_path / "many" / f"part{i}.csv").stat().st_size for i in range(FILES)}
    checkpoints = rows(clean_database, "SELECT source, (cursor->>'offset')::bigint FROM checkpoints")
    assert dict(checkpoints) == sizes
    # two at a time: some files were being loaded while another was
    spans = rows(clean_database, "SELECT started_at, finished_at FROM etl_run_sources ORDER BY started_at")
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans
    # the workers' progress reached the parent's log, named by source
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {event["source"] for event in events if event.get("event") == "progress"} == set(expected)
    # the history written by the workers was analyzed once, after all of them
    assert rows(clean_database, "SELECT count(*) FROM market_history") == [(sum(expected.values()),)]

    again = kaspero("etl", "run", "--once", "--json", "--source", "csv", env=env, timeout=300)
    rerun = json.loads(again.stdout.strip().splitlines()[-1])
    assert {item["inserted"] + item["updated"] for item in rerun["sources"].values()} == {0}


def test_a_worker_killed_mid_file_fails_its_source_and_a_rerun_loads_each_row_once(
    clean_database: str, tmp_path: Path
) -> None:
    expected = _files(tmp_path / "many", days=600)  # 36,000 rows a file
    env = _two_workers(clean_database, tmp_path, CSV_BATCH_SIZE="500")
    command = [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once", "--json", "--source", "csv"]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    killed = None
    while killed is None and time.monotonic() < deadline and process.poll() is None:
        loaded = rows(clean_database, "SELECT count(*) FROM unified_data")[0][0]
        workers = [pid for pid, line in children_of(process.pid) if "spawn_main" in line]
        if loaded > 5_000 and workers:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    out, err = process.communicate(timeout=300)
    assert killed is not None, "a worker must be killed mid-run for this test to mean anything"
    assert process.returncode == 1, err  # the run is not a success, and the process says so
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] in ("partial", "failed")
    lost = [name for name, item in summary["sources"].items() if item["status"] == "failed"]
    assert lost
    assert rows(clean_database, "SELECT count(*) FROM etl_run_sources WHERE status = 'running'") == [(0,)]

    result = kaspero("etl", "run", "--once", "--json", "--source", "csv", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert rows(clean_database, "SELECT source, count(*) FROM unified_data GROUP BY 1 ORDER BY 1") == sorted(
        expected.items()
    )
    assert rows(clean_database, "SELECT count(*) FROM raw_csv_lines") == [(sum(expected.values()),)]
    assert rows(clean_database, "SELECT count(*) FROM market_history") == [(sum(expected.values()),)]


def test_a_killed_run_takes_its_workers_with_it_and_a_rerun_loads_each_row_once(
    clean_database: str, tmp_path: Path
) -> None:
    expected = _files(tmp_path / "many", days=600)
    env = _two_workers(clean_database, tmp_path, CSV_BATCH_SIZE="500")
    command = [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once", "--json", "--source", "csv"]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        workers = [pid for pid, line in children_of(process.pid) if "spawn_main" in line]
        if workers and rows(clean_database, "SELECT count(*) FROM unified_data")[0][0] > 2_000:
            break
        time.sleep(0.05)
    assert workers, "the run must have workers loading for this test to mean anything"
    process.kill()  # SIGKILL: the parent can tell its workers nothing
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "spawn_main" in _cmdline(pid) for pid in workers):
        assert time.monotonic() < deadline, "the workers outlived their parent"
        time.sleep(0.1)
    result = kaspero("etl", "run", "--once", "--json", "--source", "csv", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert rows(clean_database, "SELECT source, count(*) FROM unified_data GROUP BY 1 ORDER BY 1") == sorted(
        expected.items()
    )
    assert rows(clean_database, "SELECT count(*) FROM raw_csv_lines") == [(sum(expected.values()),)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_files_bringing_new_years_load_side_by_side_without_deadlocking(
    clean_database: str, tmp_path: Path
) -> None:
    """Guards the deadlock once seen when two workers made yearly partitions of the history inside
    their writes (each held the table the other's DDL needed). Since migration 0022 the history has
    no partitions (a bar is its record); files of several years still load side by side, each bar
    once."""
    folder = tmp_path / "years"
    folder.mkdir()
    for year in (2014, 2015, 2016, 2017):
        write_csv(folder / f"y{year}.csv", list(market_lines(days=60, assets=30, start=date(year, 3, 1))))
    env = environment(DATABASE_URL=clean_database, CSV_SOURCE_PATH=str(folder / "*.csv"), CSV_WORKERS="2",
                      CSV_BATCH_SIZE="200")  # fmt: skip
    done = kaspero("etl", "run", "--once", "--json", "--source", "csv", env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert {item["status"] for item in summary["sources"].values()} == {"success"}
    assert rows(clean_database, "SELECT count(*) FROM market_history") == [(4 * 60 * 30,)]
