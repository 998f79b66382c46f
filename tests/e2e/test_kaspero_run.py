"""`kaspero run` (what `make run` starts) on a fresh embedded PostgreSQL: up, serving, and cleanly down."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from adapters.postgres.embedded import EmbeddedPostgres
from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, environment, free_port, get, wait_for
from tests.support.provider import loopback_provider


def test_run_starts_everything_serves_every_source_and_stops_what_it_started(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    csv = write_csv(tmp_path / "prices.csv", list(market_lines(20)))
    port = free_port()
    with loopback_provider() as provider:
        provider.state.coins = 30
        env = environment(
            KASPERO_DATA_DIR=str(data_dir),
            CSV_SOURCE_PATH=str(csv),
            API_PORT=str(port),
            ETL_SCHEDULE_MINUTES="60",
            COINGECKO_BASE_URL=f"{provider.url}/coingecko",
            COINPAPRIKA_BASE_URL=f"{provider.url}/coinpaprika",
        )
        del env["ETL_SOURCES"]  # the default: every source
        env.pop("DATABASE_URL", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "run"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_for(f"http://127.0.0.1:{port}/live", process, timeout=120)
            status, _, health = get(f"http://127.0.0.1:{port}/health")
            assert (status, health["status"], health["etl_last_status"]) == (200, "healthy", "success")
            status, _, body = get(f"http://127.0.0.1:{port}/data?page_size=1")
            assert body["pagination"]["total_items"] == 60 + 30 + 30 + 6  # csv, two APIs, the sample news
            assert EmbeddedPostgres(data_dir).is_running()
        finally:
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stderr
    summary = json.loads(next(line for line in stdout.splitlines() if line.startswith("{")))
    assert {name: item["inserted"] for name, item in summary["sources"].items()} == {
        "coinpaprika": 30,
        "coingecko": 30,
        "csv:prices": 60,
        "rss:crypto_news": 6,
    }
    assert "embedded PostgreSQL stopped" in stdout
    assert not EmbeddedPostgres(data_dir).is_running()
