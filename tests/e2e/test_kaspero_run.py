"""`kaspero run` (what `make run` starts) on a fresh embedded PostgreSQL: up, serving, and cleanly down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.postgres.embedded import EmbeddedPostgres
from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, children_of, environment, free_port, get, wait_for
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
            API_KEYS="run-key",
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

            # the documented default body (every source) runs to its end: the run's locks no
            # longer take one pooled connection per source, starving the run of its own
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/runs", data=b"{}", method="POST",
                headers={"X-API-Key": "run-key", "Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as response:
                location = response.headers["Location"]
            requested = poll(lambda: get(f"http://127.0.0.1:{port}{location}")[2]["data"], "done", 90)
            status, _, run = get(f"http://127.0.0.1:{port}/runs/{requested['run_id']}")
            assert run["data"]["status"] == "success"
            assert len(run["data"]["sources"]) == 4

            # a child that dies is started again; the API and the database stay up meanwhile
            scheduler = next(pid for pid, line in children_of(process.pid) if "scheduler" in line)
            os.kill(scheduler, signal.SIGKILL)
            assert get(f"http://127.0.0.1:{port}/live")[0] == 200
            poll(
                lambda: {"status": "done"} if any(
                    "scheduler" in line and pid != scheduler for pid, line in children_of(process.pid)
                ) else {"status": "waiting"},
                "done", 30,
            )  # fmt: skip
            assert process.poll() is None
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
    assert "the scheduler process exited with -9; starting it again" in stderr
    assert not EmbeddedPostgres(data_dir).is_running()


def poll(read: Callable[[], dict[str, Any]], status: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value.get("status") == status:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value} after {timeout}s")
        time.sleep(0.5)
