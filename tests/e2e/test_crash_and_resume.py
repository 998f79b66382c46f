"""Kill the ETL with SIGKILL in the middle of a file, run it again: no duplicate, nothing missing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, environment, kaspero


def scalar(url: str, query: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_sigkill_mid_file_then_resume_loses_nothing_and_duplicates_nothing(
    clean_database: str, tmp_path: Path
) -> None:
    lines = list(market_lines(days=1_000, assets=60))
    path = write_csv(tmp_path / "history.csv", lines)
    size = path.stat().st_size
    env = environment(
        DATABASE_URL=clean_database,
        CSV_SOURCE_PATH=str(path),
        CSV_BATCH_SIZE="250",
        RUN_ABANDON_GRACE_SECONDS="0",
    )

    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    committed_offset = 0
    while time.monotonic() < deadline and process.poll() is None:
        committed_offset = scalar(
            clean_database, "SELECT coalesce(max((cursor->>'offset')::bigint), 0) FROM checkpoints"
        )
        if committed_offset > size // 4:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert 0 < committed_offset < size, "the kill must land mid-file for this test to mean anything"
    # the killed process's connections may still be finishing a COMMIT it sent before it died:
    # what was committed is counted once they are gone
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and scalar(
        clean_database,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    ):
        time.sleep(0.05)

    loaded_before = scalar(clean_database, "SELECT count(*) FROM unified_data")
    assert 0 < loaded_before < len(lines)
    assert (
        scalar(clean_database, "SELECT count(*) FROM etl_runs WHERE status = 'running'") == 1
    )  # killed mid-run

    result = kaspero("etl", "run", "--once", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    resumed = summary["sources"]["csv:history"]
    # resumed after the last committed batch: rows committed before the kill are not read again
    # (the batch in flight when the process died was never committed, so it is read again, once)
    assert resumed["fetched"] == len(lines) - loaded_before
    assert resumed["inserted"] == len(lines) - loaded_before

    assert scalar(clean_database, "SELECT count(*) FROM unified_data") == len(lines)
    assert scalar(clean_database, "SELECT count(DISTINCT source_record_id) FROM unified_data") == len(lines)
    assert scalar(clean_database, "SELECT count(*) FROM raw_csv_lines") == len(lines)
    assert scalar(clean_database, "SELECT count(*) FROM quarantine") == 0
    assert scalar(clean_database, "SELECT (cursor->>'offset')::bigint FROM checkpoints") == size
    # the killed run was found abandoned (its lock free) and closed by the next run
    assert scalar(clean_database, "SELECT count(*) FROM etl_runs WHERE status = 'running'") == 0
    assert (
        scalar(clean_database, "SELECT count(*) FROM etl_runs WHERE error LIKE 'interrupted: the process%%'")
        == 1
    )


def test_a_provider_key_never_reaches_the_logs_or_the_summary(clean_database: str) -> None:
    from tests.support.provider import MARKETS, Fault, loopback_provider

    with loopback_provider() as provider:
        provider.queue(MARKETS, Fault(status=401, body=b'{"error": "invalid key"}'))
        env = environment(
            DATABASE_URL=clean_database,
            ETL_SOURCES="coingecko",
            LOG_LEVEL="DEBUG",
            COINGECKO_BASE_URL=f"{provider.url}/coingecko",
            COINGECKO_API_KEY="cg-very-secret-key",
        )
        result = kaspero("etl", "run", "--once", env=env)
        [(_, _, headers)] = provider.requests_to(MARKETS)
    assert headers["x-cg-demo-api-key"] == "cg-very-secret-key"  # it was sent...
    assert result.returncode == 1
    assert "answered 401" in result.stdout
    output = result.stdout + result.stderr
    assert "cg-very-secret-key" not in output  # ...and never written anywhere


def test_runs_list_and_compare_print_for_a_terminal(clean_database: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "prices.csv", list(market_lines(days=20)))
    env = environment(DATABASE_URL=clean_database, CSV_SOURCE_PATH=str(path))
    assert kaspero("etl", "run", "--once", env=env).returncode == 0
    path.write_text(path.read_text() + "2023-01-21,BTC,Bitcoin,1,1,1,1,1,1\n")
    assert kaspero("etl", "run", "--once", env=env).returncode == 0

    listed = kaspero("runs", "list", "--limit", "5", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "trigger", "status", "started"]
    assert "csv:prices: success 1/1/0/0/0" in listed.stdout  # fetched/inserted/updated/unchanged/quarantined
    assert "csv:prices: success 60/60/0/0/0" in listed.stdout

    compared = kaspero("runs", "compare", env=env)
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.splitlines()[0] == "run 1 (success) -> run 2 (success)"
    assert "csv:prices: success -> success; fetched -59, inserted -59" in compared.stdout

    missing = kaspero("runs", "compare", "1", "99", env=env)
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        "kaspero: no run with id 99 (see `kaspero runs list`)",
    )

    other = write_csv(tmp_path / "other.csv", list(market_lines(days=2)))
    assert kaspero("etl", "run", "--once", env={**env, "CSV_SOURCE_PATH": str(other)}).returncode == 0
    across = kaspero("runs", "compare", "2", "3", env=env)
    assert across.returncode == 0, across.stderr
    assert "csv:prices: absent from run B (success in the other)" in across.stdout
    assert "csv:other: absent from run A (success in the other)" in across.stdout
    assert "-1" not in across.stdout.split("anomalies")[0]  # no counter delta against nothing

    for bad in (["--limit", "-1"], ["--limit", "ten"], ["--status", "sideways"]):
        misuse = kaspero("runs", "list", *bad, env=env)
        assert misuse.returncode == 2, bad
        assert "Traceback" not in misuse.stderr
        assert "usage: kaspero runs list" in misuse.stderr
