"""Scheduler processes against one database: replicas never double-run a source; SIGTERM is graceful."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, environment
from tests.support.provider import loopback_provider


def scheduler(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "scheduler"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def test_three_schedulers_run_each_source_once_per_interval(clean_database: str, tmp_path: Path) -> None:
    """Three replicas on one schedule: each source's runs never overlap and never come twice in an
    interval. The test waits for runs to happen (not for a time to pass), so a busy machine makes
    it slower, never red."""
    interval = 6.0
    csv = write_csv(tmp_path / "prices.csv", list(market_lines(30)))
    with loopback_provider() as provider:
        provider.state.coins = 50
        env = environment(
            DATABASE_URL=clean_database,
            CSV_SOURCE_PATH=str(csv),
            ETL_SOURCES="coingecko,csv",
            ETL_SCHEDULE_MINUTES=str(interval / 60),
            ETL_SCHEDULE_JITTER_SECONDS="0.3",
            COINGECKO_BASE_URL=f"{provider.url}/coingecko",
            COINGECKO_RATE_LIMIT_PER_MINUTE="6000",
        )
        replicas = [scheduler(env) for _ in range(3)]
        try:
            deadline = time.monotonic() + 120
            while _finished_runs_per_source(clean_database) < 3 and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            stop(replicas)
    assert [process.returncode for process in replicas] == [0, 0, 0]
    assert _finished_runs_per_source(clean_database) >= 3
    with psycopg.connect(clean_database) as connection:
        rows = connection.execute(
            "SELECT s.source, s.started_at, s.finished_at, r.trigger FROM etl_run_sources s"
            " JOIN etl_runs r ON r.id = s.run_id ORDER BY s.source, s.started_at"
        ).fetchall()
    by_source: dict[str, list[tuple]] = {}
    for source, started, finished, trigger in rows:
        assert trigger == "schedule"
        by_source.setdefault(source, []).append((started, finished))
    assert set(by_source) == {"coingecko", "csv:prices"}
    for source, spans in by_source.items():
        for (start, end), (next_start, _) in itertools.pairwise(spans):
            assert end is not None
            assert end <= next_start, f"{source} ran twice at once"
            # the schedule mark is taken just before a run starts: its start may lag the mark a
            # little, never by most of an interval; two replicas running one interval would be ~0 s apart
            assert (next_start - start).total_seconds() >= interval * 0.75, (
                f"{source} ran twice in one interval"
            )


def _finished_runs_per_source(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        counts = connection.execute(
            "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL) FROM etl_run_sources GROUP BY source"
        ).fetchall()
    return min((count for (count,) in counts), default=0) if len(counts) == 2 else 0


def test_sigterm_stops_after_the_batch_in_flight_and_the_next_run_resumes(
    clean_database: str, tmp_path: Path
) -> None:
    lines = list(market_lines(days=600, assets=60))
    csv = write_csv(tmp_path / "big.csv", lines)
    env = environment(
        DATABASE_URL=clean_database,
        CSV_SOURCE_PATH=str(csv),
        CSV_BATCH_SIZE="250",
        ETL_SCHEDULE_MINUTES="60",
        ETL_SCHEDULE_JITTER_SECONDS="0",
    )
    process = scheduler(env)
    deadline = time.monotonic() + 60
    with psycopg.connect(clean_database, autocommit=True) as connection:
        while time.monotonic() < deadline:
            loaded = connection.execute("SELECT count(*) FROM unified_data").fetchone()[0]  # type: ignore[index]
            if loaded >= 2000:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert process.returncode == 0
        run = connection.execute("SELECT status, error FROM etl_runs ORDER BY id DESC LIMIT 1").fetchone()
        loaded = connection.execute("SELECT count(*) FROM unified_data").fetchone()[0]  # type: ignore[index]
    assert run is not None
    assert run[0] == "failed"
    assert "interrupted" in run[1]
    assert 0 < loaded < len(lines)

    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(clean_database) as connection:
        total = connection.execute(
            "SELECT count(*), count(DISTINCT source_record_id) FROM unified_data"
        ).fetchone()
        raw = connection.execute("SELECT count(*) FROM raw_csv_lines").fetchone()
    assert total == (len(lines), len(lines))
    assert raw == (len(lines),)


def test_a_request_whose_scheduler_was_killed_is_closed_failed_by_the_next_one(
    clean_database: str, tmp_path: Path
) -> None:
    def request_state() -> tuple[str, str | None]:
        with psycopg.connect(clean_database) as connection:
            return connection.execute("SELECT status, error FROM run_requests WHERE id = 1").fetchone()

    def loaded() -> int:
        with psycopg.connect(clean_database) as connection:
            return connection.execute("SELECT count(*) FROM unified_data").fetchone()[0]

    def until(wanted: Callable[[], bool], timeout: float = 180) -> bool:
        deadline = time.monotonic() + timeout
        while not wanted() and time.monotonic() < deadline:
            time.sleep(0.1)
        return wanted()

    csv = write_csv(tmp_path / "prices.csv", list(market_lines(days=1000, assets=60)))  # a run of seconds
    env = environment(
        DATABASE_URL=clean_database, CSV_SOURCE_PATH=str(csv), ETL_SOURCES="csv", ETL_SCHEDULE_MINUTES="600",
        CSV_BATCH_SIZE="500", RUN_ABANDON_GRACE_SECONDS="1",
    )  # fmt: skip
    with psycopg.connect(clean_database, autocommit=True) as connection:
        connection.execute("INSERT INTO run_requests (sources, requested_at) VALUES ('{csv}', now())")
    first = scheduler(env)
    assert until(lambda: request_state()[0] == "running" and loaded() > 0)  # mid-run
    first.kill()  # SIGKILL: nothing of it closes anything
    first.wait(timeout=30)
    assert request_state()[0] == "running"
    second = scheduler(env)
    try:
        assert until(lambda: request_state()[0] == "failed")
    finally:
        stop([second])
    status, error = request_state()
    assert status == "failed"
    assert error is not None
    assert "the scheduler running it stopped" in error
