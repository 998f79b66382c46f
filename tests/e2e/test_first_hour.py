"""A new user's first mistakes, each met with a message and an exit code, never a traceback,
and nothing started behind their back."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from entrypoints.bootstrap import NoDatabase, build
from entrypoints.settings import Settings
from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, environment, free_port, kaspero, wait_for


def test_a_command_without_a_database_says_how_to_get_one_and_starts_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = environment(KASPERO_DATA_DIR=str(state))
    env.pop("DATABASE_URL", None)
    for command in (["runs", "list"], ["etl", "run", "--once"], ["db", "migrate"], ["quarantine", "list"]):
        done = kaspero(*command, env=env, timeout=60)
        assert done.returncode == 2, (command, done.stderr)
        assert "no database: set DATABASE_URL" in done.stderr
        assert "kaspero db start" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (state / "pgdata").exists()  # no embedded server was started


def test_build_in_a_notebook_refuses_rather_than_starting_a_server(tmp_path: Path) -> None:
    with pytest.raises(NoDatabase, match="no database: set DATABASE_URL"):
        build(Settings(data_dir=tmp_path / "state"))
    assert not (tmp_path / "state" / "pgdata").exists()


def test_run_with_a_bad_database_url_names_the_variable_and_hides_the_password(tmp_path: Path) -> None:
    env = environment(
        DATABASE_URL="postgresql://kaspero:p%40ss-s3cret@127.0.0.1:9/kaspero", KASPERO_DATA_DIR=str(tmp_path),
        API_PORT=str(free_port()),  # never the default: a user's own `make run` may hold 8000
    )  # fmt: skip
    done = kaspero("run", env=env, timeout=60)
    assert done.returncode == 3
    assert "cannot use the database (DATABASE_URL)" in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert "migrations" not in done.stdout  # nothing was done first
    assert "Traceback" not in done.stderr


def test_run_on_a_port_in_use_refuses_before_any_work(clean_database: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = environment(DATABASE_URL=clean_database, API_PORT=str(port), KASPERO_DATA_DIR=str(tmp_path))
        done = kaspero("run", env=env, timeout=60)
    assert done.returncode == 2
    assert f"API_PORT: 127.0.0.1:{port} is already in use" in done.stderr
    with psycopg.connect(clean_database) as connection:
        assert connection.execute("SELECT count(*) FROM etl_runs").fetchone() == (0,)


def test_a_second_run_in_the_same_project_is_refused_at_once_saying_where_the_first_is(
    clean_database: str, tmp_path: Path
) -> None:
    port = free_port()
    csv = write_csv(tmp_path / "prices.csv", list(market_lines(5)))
    env = environment(
        DATABASE_URL=clean_database, API_PORT=str(port), KASPERO_DATA_DIR=str(tmp_path / "state"),
        CSV_SOURCE_PATH=str(csv), ETL_SCHEDULE_MINUTES="60",
    )  # fmt: skip
    first = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "run"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/live", first, timeout=90)
        started = time.monotonic()
        second = kaspero("run", env={**env, "API_PORT": str(free_port())}, timeout=60)
        assert time.monotonic() - started < 15
        assert second.returncode == 2
        assert "`kaspero run` is already running for this project" in second.stderr
        assert f"pid {first.pid}, API on http://127.0.0.1:{port}" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=90)
    assert first.returncode == 0


def test_ctrl_c_during_the_first_pass_stops_it_after_the_batch_in_flight(
    clean_database: str, tmp_path: Path
) -> None:
    port = free_port()
    csv = write_csv(tmp_path / "prices.csv", list(market_lines(1_000, assets=60)))  # 60,000 rows
    env = environment(
        DATABASE_URL=clean_database, API_PORT=str(port), KASPERO_DATA_DIR=str(tmp_path / "state"),
        CSV_SOURCE_PATH=str(csv), CSV_BATCH_SIZE="500",
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "run"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(clean_database) as connection:
            if connection.execute("SELECT count(*) FROM unified_data").fetchone()[0] > 0:  # type: ignore[index]
                break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert "stopped during the first pass" in stdout
    assert "dashboard on" not in stdout  # the scheduler and the API were never started
    assert "Traceback" not in stderr
    with psycopg.connect(clean_database) as connection:
        status, error = connection.execute("SELECT status, error FROM etl_runs").fetchone()  # type: ignore[misc]
        loaded = connection.execute("SELECT count(*) FROM unified_data").fetchone()[0]  # type: ignore[index]
    assert status == "failed"
    assert "interrupted" in error
    assert 0 < loaded < 60_000


def test_the_bundled_files_load_with_nothing_quarantined_and_no_drift(clean_database: str) -> None:
    env = environment(
        DATABASE_URL=clean_database, ETL_SOURCES="csv,rss"
    )  # the default files: data/*.csv, the feed
    done = kaspero("etl", "run", "--once", "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert set(summary["sources"]) == {"csv:market_history", "rss:crypto_news"}  # not the cross-reference
    assert all(item["quarantined"] == 0 for item in summary["sources"].values())
    assert "schema_drift" not in done.stderr
    with psycopg.connect(clean_database) as connection:
        assert connection.execute("SELECT count(*) FROM schema_drifts").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)


def test_db_start_with_database_url_set_says_it_manages_only_the_embedded_server(tmp_path: Path) -> None:
    env = environment(DATABASE_URL="postgresql://kaspero@127.0.0.1:9/kaspero", KASPERO_DATA_DIR=str(tmp_path))
    done = kaspero("db", "start", env=env, timeout=60)
    assert done.returncode == 2
    assert "manages only the embedded server" in done.stderr
    assert not (tmp_path / "pgdata").exists()  # nothing was started
