"""The database stopped and started under the running stack: the API answers 503 with
Retry-After (never 500, never a long wait) and recovers by itself; the scheduler outlives the
outage; an ETL pass without a database says so and exits 3; a load cut by an outage loses and
duplicates nothing once rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg

from adapters.postgres.embedded import EmbeddedPostgres
from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, children_of, environment, get, gunicorn, kaspero


def test_the_api_answers_503_during_an_outage_keeps_live_fast_and_recovers(
    own_server: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    embedded, url = own_server
    env = environment(
        DATABASE_URL=url, CSV_SOURCE_PATH=str(write_csv(tmp_path / "prices.csv", list(market_lines(10))))
    )
    assert kaspero("etl", "run", "--once", env=env).returncode == 0
    with gunicorn(env) as base:
        assert get(f"{base}/data")[0] == 200
        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                for path in ("/data", "/runs", "/assets"):
                    statuses[get(f"{base}{path}", timeout=15)[0]] += 1

        load = [threading.Thread(target=hammer) for _ in range(3)]
        for thread in load:
            thread.start()
        try:
            time.sleep(0.5)
            embedded.stop()
            started = time.monotonic()
            status, headers, problem = get(f"{base}/data", timeout=15)
            waited = time.monotonic() - started
            assert (status, headers["Retry-After"], problem["status"]) == (503, "5", 503)
            assert "not reachable" in problem["detail"]
            assert waited < 4, f"a request waited {waited:.1f}s for the database"
            for path in ("/runs", "/assets", "/health"):
                assert get(f"{base}{path}", timeout=15)[0] == 503
            live = []
            for _ in range(5):
                began = time.monotonic()
                assert get(f"{base}/live", timeout=15)[0] == 200
                live.append(time.monotonic() - began)
            assert max(live) < 1.0, f"/live took {max(live):.2f}s during the outage"
            time.sleep(1.0)
            embedded.start()
            assert get(f"{base}/data", timeout=15)[0] == 200  # the first request after recovery
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in load:
                thread.join(timeout=30)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0
    assert statuses[200] > 0


def test_the_scheduler_outlives_an_outage_and_runs_again_after_it(
    own_server: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    embedded, url = own_server
    csv = write_csv(tmp_path / "prices.csv", list(market_lines(5)))
    env = environment(
        DATABASE_URL=url,
        CSV_SOURCE_PATH=str(csv),
        ETL_SCHEDULE_MINUTES="0.05",
        ETL_SCHEDULE_JITTER_SECONDS="0",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "scheduler"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert _runs(url, until=lambda count: count >= 1, timeout=30) >= 1
        embedded.stop()
        time.sleep(6)  # two scheduling intervals with no database
        assert process.poll() is None, "the scheduler died of the outage"
        embedded.start()
        before = _runs(url, until=lambda count: True, timeout=5)
        assert _runs(url, until=lambda count: count > before, timeout=60) > before
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "scheduler_cycle_failed" in stderr
    assert "Traceback" not in stderr


def _runs(url: str, until, timeout: float) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                count = connection.execute(
                    "SELECT count(*) FROM etl_runs WHERE status = 'success'"
                ).fetchone()[0]  # type: ignore[index]
            if until(count):
                return int(count)
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no run as expected within {timeout}s")
        time.sleep(0.3)


def test_an_etl_pass_without_a_database_says_so_in_one_line_and_exits_3(
    own_server: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    embedded, url = own_server
    embedded.stop()
    env = environment(
        DATABASE_URL=url, CSV_SOURCE_PATH=str(write_csv(tmp_path / "p.csv", list(market_lines(2))))
    )
    done = kaspero("etl", "run", "--once", env=env, timeout=60)
    assert done.returncode == 3
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kaspero: cannot use the database (DATABASE_URL): ")
    embedded.start()


def test_a_load_cut_by_an_outage_loses_and_duplicates_nothing_once_rerun(
    own_server: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    embedded, url = own_server
    lines = list(market_lines(1_000, assets=30))  # 30,000 rows
    csv = write_csv(tmp_path / "prices.csv", lines)
    env = environment(
        DATABASE_URL=url, CSV_SOURCE_PATH=str(csv), CSV_BATCH_SIZE="1000", RUN_ABANDON_GRACE_SECONDS="0"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while _count(url) < 3000 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    embedded.stop()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, 3), stderr  # 0 only if it finished first
    assert "Traceback" not in stderr
    embedded.start()
    rerun = kaspero("etl", "run", "--once", env=env, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    with psycopg.connect(url) as connection:
        stored = connection.execute(
            "SELECT count(*), count(DISTINCT source_record_id) FROM unified_data"
        ).fetchone()
        running = connection.execute("SELECT count(*) FROM etl_runs WHERE status = 'running'").fetchone()
    assert stored == (len(lines), len(lines))
    assert running == (0,)  # the run the outage cut was closed as failed by the next one


def _count(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            return int(connection.execute("SELECT count(*) FROM unified_data").fetchone()[0])  # type: ignore[index]
    except psycopg.OperationalError:
        return 0


def _server_processes(embedded: EmbeddedPostgres) -> list[int]:
    """The postmaster (from its pid file) and every process it started."""
    pid_file = next(embedded.data_dir.rglob("postmaster.pid"))
    postmaster = int(pid_file.read_text().splitlines()[0])
    return [postmaster, *(pid for pid, _ in children_of(postmaster))]


def test_a_frozen_database_costs_a_request_its_budget_then_503_and_live_stays_fast(
    own_server: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    """The server's processes stopped (SIGSTOP: a stuck disk, a paused VM) answer nothing and
    close nothing: only the client's own budget ends a request waiting on them."""
    embedded, url = own_server
    env = environment(
        DATABASE_URL=url, CSV_SOURCE_PATH=str(write_csv(tmp_path / "prices.csv", list(market_lines(10)))),
        API_REQUEST_BUDGET_MS="1500", API_STATEMENT_TIMEOUT_MS="1500",
    )  # fmt: skip
    assert kaspero("etl", "run", "--once", env=env).returncode == 0
    with gunicorn(env) as base:
        for path in ("/data", "/runs", "/assets", "/health"):
            assert get(f"{base}{path}")[0] == 200  # every worker's pool is warm
        frozen = _server_processes(embedded)
        answers: list[tuple[int, float]] = []
        live: list[float] = []
        stop = threading.Event()

        def client(path: str) -> None:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    status = get(f"{base}{path}", timeout=10)[0]
                except OSError:  # no answer in 10 s: recorded as such, never lost with the thread
                    status = 0
                answers.append((status, time.monotonic() - began))

        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            clients = [
                threading.Thread(target=client, args=(path,)) for path in ["/data", "/assets", "/runs"] * 4
            ]
            for thread in clients:
                thread.start()
            for _ in range(15):  # /live probed while twelve clients wait on the frozen database
                began = time.monotonic()
                assert get(f"{base}/live", timeout=30)[0] == 200
                live.append(time.monotonic() - began)
                stop.wait(0.3)
            stop.set()
            for thread in clients:
                thread.join(timeout=60)
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        recovered = [get(f"{base}/data", timeout=30)[0] for _ in range(5)]
    assert max(live) < 1.0, f"/live took {max(live):.2f}s while the database was frozen"
    assert {status for status, _ in answers} <= {200, 503}, answers
    assert any(status == 503 for status, _ in answers)
    slowest = max(seconds for _, seconds in answers)
    assert slowest < 1.5 + 1.0 + 1.5, f"a request waited {slowest:.1f}s on a frozen database"
    assert recovered[-1] == 200, recovered  # the cut connections were replaced
