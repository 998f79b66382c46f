"""`make smoke`: the whole system as an operator runs it, on this machine, with a short report.

A fresh database, the loopback provider standing in for CoinGecko and CoinPaprika, a CSV
history, then gunicorn (production config) and the scheduler as processes: every endpoint is
queried, the scheduler is killed in the middle of a file and restarted, and the data is checked
for duplicates and losses. Ends with `smoke: N passed, M failed`; exits non-zero on a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from adapters.postgres.admin import create_database, database_url_for, drop_database
from adapters.postgres.embedded import EmbeddedPostgres
from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, environment, get, gunicorn, kaspero
from tests.support.provider import loopback_provider

COINS = 300
CSV_ROWS_DAYS, CSV_ASSETS = 800, 60
API_KEY = "smoke-key-" + uuid.uuid4().hex


class Report:
    def __init__(self) -> None:
        self.passed = self.failed = 0

    def check(self, name: str, condition: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            result = condition()
            ok = result is not False
        except Exception as ex:  # a smoke step failing is reported, and the run goes on
            result, ok = ex, False
        took = time.monotonic() - started
        self.passed += ok
        self.failed += not ok
        detail = "" if ok else f"  <- {result!r}"[:300]
        print(f"  {'ok  ' if ok else 'FAIL'} {name} ({took:.1f}s){detail}", flush=True)
        return result


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
    return row[0] if row else None


def scheduler(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "scheduler"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> int:
    report = Report()
    given = os.environ.get("DATABASE_URL", "").strip()
    embedded = None if given else EmbeddedPostgres(REPO / ".kaspero" / "test")
    started_server = embedded is not None and not embedded.is_running()
    server = database_url_for(given, "postgres") if given else embedded.start()  # type: ignore[union-attr]
    name = f"kaspero_smoke_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    print(f"smoke: database {name}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp, loopback_provider() as provider:
            provider.state.coins = COINS
            lines = list(market_lines(days=CSV_ROWS_DAYS, assets=CSV_ASSETS))
            csv = write_csv(Path(tmp) / "history.csv", lines)
            env = environment(
                DATABASE_URL=url,
                CSV_SOURCE_PATH=str(csv),
                CSV_BATCH_SIZE="500",
                ETL_SOURCES="coinpaprika,coingecko,csv",
                ETL_SCHEDULE_MINUTES="0.1",
                ETL_SCHEDULE_JITTER_SECONDS="0.2",
                COINGECKO_BASE_URL=f"{provider.url}/coingecko",
                COINPAPRIKA_BASE_URL=f"{provider.url}/coinpaprika",
                COINGECKO_RATE_LIMIT_PER_MINUTE="6000",
                COINPAPRIKA_HISTORY_DAYS="0",  # the loopback serves every year
                API_KEYS=API_KEY,
            )
            expected_rows = len(lines) + 2 * COINS
            report.check("kaspero db migrate", lambda: kaspero("db", "migrate", env=env).returncode == 0)
            with gunicorn(env) as api:
                run_system(report, env, url, api, expected_rows)
    finally:
        drop_database(server, name)
        if started_server and embedded is not None:
            embedded.stop()
    print(f"smoke: {report.passed} passed, {report.failed} failed", flush=True)
    return 1 if report.failed else 0


def run_system(report: Report, env: dict[str, str], url: str, api: str, expected_rows: int) -> None:
    process = scheduler(env)
    try:
        offset = report.check(
            "scheduler starts loading the CSV",
            lambda: wait(
                lambda: scalar(
                    url, "SELECT max((cursor->>'offset')::bigint) FROM checkpoints WHERE source LIKE 'csv:%'"
                ),
                60,
                "a CSV checkpoint",
            ),
        )
        process.send_signal(signal.SIGKILL)
        process.wait()
        report.check(
            "scheduler killed (SIGKILL) in the middle of the file",
            lambda: (
                bool(offset)
                and scalar(url, "SELECT count(*) FROM unified_data WHERE source LIKE 'csv:%'")
                < expected_rows - 600
            ),
        )
        process = scheduler(env)
        report.check(
            "restarted scheduler loads everything",
            lambda: wait(
                lambda: scalar(url, "SELECT count(*) FROM unified_data") == expected_rows,
                120,
                f"{expected_rows} rows",
            ),
        )
        report.check(
            "no duplicate, nothing lost",
            lambda: (
                scalar(url, "SELECT count(DISTINCT (source, source_record_id)) FROM unified_data")
                == expected_rows
                and scalar(url, "SELECT count(*) FROM quarantine") == 0
            ),
        )
        check_endpoints(report, api)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    report.check("scheduler stops on SIGTERM", lambda: process.returncode == 0)


def check_endpoints(report: Report, api: str) -> None:
    def ok(path: str, status: int = 200) -> Any:
        code, _, body = get(f"{api}{path}")
        if code != status:
            raise AssertionError(f"{path}: {code} {body}")
        return body

    report.check("GET /health is healthy", lambda: ok("/health")["status"] in ("healthy", "degraded"))
    report.check("GET /ready and /live", lambda: ok("/ready")["ready"] and ok("/live"))
    first = report.check("GET /data", lambda: ok("/data?page_size=5&sort_by=price_usd")["data"][0])
    report.check("GET /data/{id}", lambda: ok(f"/data/{first['id']}")["data"]["id"] == first["id"])
    report.check(
        "GET /data with a bad parameter is a 400 problem",
        lambda: ok("/data?page_size=0", 400)["status"] == 400,
    )
    runs = report.check("GET /runs", lambda: ok("/runs?limit=50")["data"])
    report.check("GET /runs/{id}", lambda: ok(f"/runs/{runs[0]['id']}")["data"]["id"] == runs[0]["id"])
    report.check(
        "GET /runs/{id}/anomalies", lambda: isinstance(ok(f"/runs/{runs[0]['id']}/anomalies")["data"], list)
    )
    report.check("GET /compare-runs", lambda: "anomalies" in ok("/compare-runs")["data"])
    report.check(
        "GET /stats",
        lambda: (
            {item["source"] for item in ok("/stats")["data"]} >= {"coingecko", "coinpaprika", "csv:history"}
        ),
    )
    report.check("GET /checkpoints", lambda: len(ok("/checkpoints")["data"]) == 3)
    report.check("GET /schema-drifts", lambda: ok("/schema-drifts")["data"] == [])
    report.check("GET /openapi.json", lambda: ok("/openapi.json")["openapi"] == "3.1.0")
    bitcoin = report.check("GET /assets", lambda: ok("/assets?symbol=BTC")["data"][0]["id"])
    report.check(
        "GET /history of two assets at once",
        lambda: (
            {c["symbol"] for c in ok("/history?symbol=BTC,ETH&interval=1d&limit=1000")["data"]}
            == {"BTC", "ETH"}
        ),
    )
    report.check(
        "GET /assets/{id}/coverage",
        lambda: all(source["buckets"] > 0 for source in ok(f"/assets/{bitcoin}/coverage")["data"]["sources"]),
    )

    def queued_run() -> bool:
        request = urllib.request.Request(
            f"{api}/runs", data=json.dumps({"sources": ["coinpaprika"]}).encode(), method="POST",
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            location = response.headers["Location"]
        done = wait(lambda: ok(location)["data"]["run_id"], 60, "the requested run")
        return ok(f"/runs/{done}")["data"]["trigger"] == "manual"

    report.check("POST /runs with the key runs once through the scheduler", queued_run)

    def backfilled() -> bool:
        # coins the CSV has not: its made-up prices are no CoinPaprika's (a window of those is refused)
        body = {
            "symbols": ["ADA", "DOGE"],
            "sources": ["coinpaprika"],
            "since": "2025-01-01",
            "until": "2025-03-01",
        }
        request = urllib.request.Request(
            f"{api}/backfills", data=json.dumps(body).encode(), method="POST",
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            location = response.headers["Location"]
        job = wait(lambda: (job := ok(location)["data"])["finished_at"] and job, 120, "the backfill job")
        if (job["state"], job["bars"]) != ("success", 2 * 59):
            raise AssertionError(
                f"{location}: {job['state']}, {job['bars']} bars, {job['problems']} {job['errors']}"
            )
        return True

    report.check("POST /backfills: the scheduler works the job to its end", backfilled)

    def metrics() -> bool:
        with urllib.request.urlopen(f"{api}/metrics", timeout=10) as response:
            text = response.read().decode()
        return (
            'kaspero_etl_source_runs_total{source="coingecko",status="success"}' in text
            and "kaspero_http_requests_total" in text
        )

    report.check("GET /metrics shows the runs and the HTTP traffic", metrics)


if __name__ == "__main__":
    sys.exit(main())
