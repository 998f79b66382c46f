"""api: gunicorn with the production config over 1,000,000 unified rows, loaded by a bounded
client on loopback (8 connections, 15 s a case): requests/s, p50, p99, errors; and the framework
ceiling, a bare Falcon handler under the same gunicorn settings, measured before and after the
cases (their mean is the ceiling the ratios use)."""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg

from benchmarks.harness import REPO, print_table, save, scratch_database
from tests.support.processes import environment, free_port, get, wait_for

ROWS = int(os.environ.get("BENCH_API_ROWS", "1000000"))
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "15"))
CONNECTIONS = 8
WORKERS = 2 * (os.cpu_count() or 1) + 1

FILL = """
INSERT INTO etl_runs (trigger, status, started_at, finished_at) VALUES ('cli', 'success', now(), now());
INSERT INTO assets (symbol, name)
SELECT DISTINCT CASE WHEN g %% 1000 = 0 THEN 'BTC' ELSE 'C' || (g %% 5000) END, 'Coin ' || (g %% 5000)
FROM generate_series(1, %(rows)s) g;
INSERT INTO unified_data (source_type, source, source_record_id, kind, title, symbol, asset_name, price_usd,
                          market_cap_usd, volume_24h_usd, rank, published_at, observed_at, raw_id,
                          first_run_id, last_run_id, checksum, asset_id)
SELECT 'api', CASE WHEN g %% 2 = 0 THEN 'coingecko' ELSE 'coinpaprika' END, 'coin-' || g, 'market',
       (ARRAY['Bitcoin', 'Ethereum', 'Solana', 'Cardano', 'Dogecoin', 'Litecoin'])[1 + g %% 6] || ' ' || (g %% 5000),
       a.symbol, a.name, (g %% 100000) / 7.0, g * 13.0, g * 3.0, 1 + g %% 5000,
       timestamptz '2024-01-01' + g * interval '30 seconds', timestamptz '2024-01-01' + g * interval '30 seconds',
       g, 1, 1, md5(g::text), a.id
FROM generate_series(1, %(rows)s) g
JOIN assets a ON a.symbol = CASE WHEN g %% 1000 = 0 THEN 'BTC' ELSE 'C' || (g %% 5000) END
             AND a.name = 'Coin ' || (g %% 5000)
ORDER BY g;
INSERT INTO market_snapshots (asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd, run_id)
SELECT asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd, 1 FROM unified_data;
INSERT INTO etl_runs (trigger, status, started_at, finished_at)
SELECT 'schedule', 'success', now() - g * interval '5 minutes', now() - g * interval '5 minutes' + interval '9 seconds'
FROM generate_series(200, 1, -1) g;
INSERT INTO etl_run_sources (run_id, source, status, fetched, inserted, unchanged, started_at, finished_at, duration_ms)
SELECT r.id, s, 'success', 5000, 50, 4950, r.started_at, r.finished_at, 9000
FROM etl_runs r, unnest(ARRAY['coingecko', 'coinpaprika', 'rss:news.example.com']) s WHERE r.id > 1;
"""


def fill(url: str) -> None:
    with psycopg.connect(url) as connection:
        for statement in FILL.strip().split(";\n"):
            if statement.strip():
                connection.execute(statement, {"rows": ROWS} if "%(rows)s" in statement else None)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")  # fresh statistics for the planner, as autovacuum would give


@contextmanager
def serving(app: str, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    metrics = tempfile.mkdtemp(prefix="kaspero-bench-metrics-")
    env = {**env, "API_HOST": "127.0.0.1", "API_PORT": str(port), "WEB_CONCURRENCY": str(WORKERS),
           "PROMETHEUS_MULTIPROC_DIR": metrics, "LOG_LEVEL": "WARNING"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:entrypoints.gunicorn_config", "--access-logfile", "/dev/null", app],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/live" if "wsgi" in app else f"{base}/constant", process, timeout=60)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def load(url: str) -> dict[str, Any]:
    """CONNECTIONS threads asking for `url` for SECONDS: throughput and latency percentiles."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def worker() -> None:
        mine: list[float] = []
        failed = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                connection.request("GET", target)
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status != 200:
                    failed += 1
            except OSError:
                failed += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else None,
        "errors": errors[0],
    }


def bare_falcon(env: dict[str, str]) -> dict[str, Any]:
    """The framework ceiling: a constant JSON answer under the same gunicorn settings."""
    with serving("benchmarks.bare_app:create()", env) as bare:
        return load(f"{bare}/constant")


def against_ceiling(
    before: dict[str, Any], after: dict[str, Any], results: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The references and the cases, each with its ratio to the ceiling. The ceiling is measured
    on both sides of the cases and averaged: this machine's speed drifts by a tenth or more over
    the minutes a run takes."""
    ceiling = (before["rps"] + after["rps"]) / 2
    return [
        {"case": "reference: bare Falcon, before", **before, "vs_ceiling": before["rps"] / ceiling},
        {"case": "reference: bare Falcon, after", **after, "vs_ceiling": after["rps"] / ceiling},
        *(
            {"case": case, **result, "vs_ceiling": result["rps"] / ceiling}
            for case, result in results.items()
        ),
    ]


def main() -> list[dict[str, Any]]:
    with scratch_database() as url:
        fill(url)
        env = environment(DATABASE_URL=url)
        before = bare_falcon(env)
        with psycopg.connect(url) as connection:
            row = connection.execute(
                "SELECT asset_id FROM market_snapshots GROUP BY asset_id ORDER BY count(*) DESC LIMIT 1"
            ).fetchone()
        busiest = row[0] if row else 1
        with serving("entrypoints.wsgi:create()", env) as api:
            _, _, first = get(f"{api}/data?page_size=20")
            cursor = first["pagination"]["next_cursor"]
            for _ in range(200):  # walk deep into the set for a cursor past 4,000 items
                _, _, page = get(f"{api}/data?page_size=20&cursor={cursor}")
                cursor = page["pagination"]["next_cursor"]
            cases = {
                "/health": "/health",
                "/data first page": "/data",
                "/data?page=100": "/data?page=100",
                "/data deep cursor": f"/data?cursor={cursor}",
                "/data?search=bit": "/data?search=bit",
                "/data?symbol=BTC&sort_by=observed_at": "/data?symbol=BTC&sort_by=observed_at",
                "/assets": "/assets",
                "/assets/{id}/history?interval=1h": f"/assets/{busiest}/history?interval=1h",
            }
            results = {case: load(f"{api}{path}") for case, path in cases.items()}
            with psycopg.connect(url) as connection:
                run = connection.execute("SELECT max(id) FROM etl_runs").fetchone()
            pages = {
                "/ (overview)": "/",
                "/ui/runs": "/ui/runs",
                "/ui/runs/{id}": f"/ui/runs/{run[0] if run and run[0] else 1}",
                "/ui/drift": "/ui/drift",
                "/ui/quarantine": "/ui/quarantine",
                "/ui/assets?q=bit": "/ui/assets?q=bit",
                "/ui/assets/{id} (1d, 1y)": f"/ui/assets/{busiest}",
                "/ui/assets/{id}?interval=1h&range=7d": f"/ui/assets/{busiest}?interval=1h&range=7d",
                "/ui/assets/{id}?interval=5m&range=1d": f"/ui/assets/{busiest}?interval=5m&range=1d",
            }
            dashboard = [{"page": name, **server_times(f"{api}{path}")} for name, path in pages.items()]
        rows = against_ceiling(before, bare_falcon(env), results)
    print_table(
        f"api ({ROWS:,} unified rows, gunicorn {WORKERS} gthread workers, {CONNECTIONS} connections, {SECONDS:g} s a case)",
        rows,
    )
    save("api", rows)
    print_table(
        f"dashboard ({ROWS:,} unified rows and history rows; server time of one request at a time)", dashboard
    )
    save("dashboard", dashboard)
    return rows


def server_times(url: str, requests: int = 40) -> dict[str, Any]:
    """The server's own time (X-Response-Time-Ms) for a page, one request at a time."""
    parts = urlsplit(url)
    spent = []
    for _ in range(requests):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            return {"status": response.status}
        spent.append(float(response.getheader("X-Response-Time-Ms") or "nan"))
    spent.sort()
    return {
        "p50_ms": statistics.median(spent),
        "p99_ms": spent[int(len(spent) * 0.99) - 1],
        "max_ms": spent[-1],
    }


if __name__ == "__main__":
    main()
