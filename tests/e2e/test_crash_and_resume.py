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
    lines = list(market_lines(days=10_000, assets=6))
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
    assert scalar(clean_database, "SELECT count(*) FROM raw_csv") == len(lines)
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
