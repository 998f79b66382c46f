"""`make soak`: the stack under load and faults for a while (10 minutes; `SOAK_SECONDS`), then a
report. Not part of `make test`.

On loopback, with a PostgreSQL of its own: gunicorn answering 8 connections of steady reads,
the scheduler ingesting every minute from the loopback provider (which answers 429, 500 and
truncated bodies now and then, and pages with values no column can hold: NaN, 1e309, a year
9999, markup for a symbol) and from a CSV file that grows every 20 s; the database stopped for
10 s twice and frozen (its processes SIGSTOPped) for 10 s once. Passes when no answer was a 5xx
other than 503, `/live` always answered within a second, no CSV row was lost or loaded twice,
every provider coin is stored once, no run was left `running`, and no process's memory kept
growing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import psycopg

from adapters.postgres.admin import create_database
from adapters.postgres.embedded import EmbeddedPostgres
from entrypoints.bootstrap import migrate
from tests.support.market_csv import append_lines, market_lines, write_csv
from tests.support.processes import REPO, children_of, environment, free_port, gunicorn_command, wait_for
from tests.support.provider import (
    HOSTILE,
    MARKETS,
    TICKERS,
    TRUNCATED,
    Fault,
    hostile_page,
    loopback_provider,
)

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
CONNECTIONS = 8
PATHS = ("/data", "/data?symbol=BTC", "/assets", "/runs", "/health", "/live", "/quarantine")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def family(pid: int) -> list[int]:
    """`pid` and its children (gunicorn's workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def server_processes(embedded: EmbeddedPostgres) -> list[int]:
    """The postmaster and every process it started: what a freeze stops."""
    postmaster = int(next(embedded.data_dir.rglob("postmaster.pid")).read_text().splitlines()[0])
    return [postmaster, *(pid for pid, _ in children_of(postmaster))]


def main() -> int:
    embedded = EmbeddedPostgres(REPO / ".kaspero" / f"soak-{uuid.uuid4().hex[:8]}")
    url = create_database(embedded.start(), "kaspero")
    migrate(url)
    work = Path(REPO / ".kaspero" / "soak-files" / uuid.uuid4().hex[:8])
    work.mkdir(parents=True)
    lines = list(market_lines(days=1000, assets=12))
    written = 300
    csv = write_csv(work / "prices.csv", lines[:written])
    statuses: Counter[int] = Counter()
    slowest = 0.0
    stop = threading.Event()
    report: dict[str, object] = {}
    with loopback_provider() as provider:
        provider.state.coins = 400
        port = free_port()
        env = environment(
            DATABASE_URL=url, API_PORT=str(port), CSV_SOURCE_PATH=str(csv), ETL_SOURCES="coingecko,coinpaprika,csv",
            COINGECKO_BASE_URL=f"{provider.url}/coingecko", COINPAPRIKA_BASE_URL=f"{provider.url}/coinpaprika",
            COINGECKO_RATE_LIMIT_PER_MINUTE="6000", RATE_LIMIT_REQUESTS_PER_MINUTE="6000",
            ETL_SCHEDULE_MINUTES="1", ETL_SCHEDULE_JITTER_SECONDS="0", HTTP_RETRY_MAX_SECONDS="10",
            RUN_ABANDON_GRACE_SECONDS="5", PROMETHEUS_MULTIPROC_DIR=str(work / "metrics"), LOG_LEVEL="WARNING",
        )  # fmt: skip
        (work / "metrics").mkdir()
        api = subprocess.Popen(
            gunicorn_command(), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "scheduler"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/live", api)

        def load() -> None:
            nonlocal slowest
            index = 0
            while not stop.is_set():
                path = PATHS[index % len(PATHS)]
                index += 1
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(f"{base}{path}", timeout=30) as response:
                        status = response.status
                        response.read()
                except urllib.error.HTTPError as ex:
                    status = ex.code
                except OSError:
                    status = 0  # no answer at all
                slowest = max(slowest, time.monotonic() - started)
                statuses[status] += 1

        live_slowest = 0.0

        def probe_live() -> None:  # the liveness probe an orchestrator would run, every half second
            nonlocal live_slowest
            while not stop.is_set():
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(f"{base}/live", timeout=30) as response:
                        response.read()
                except OSError:
                    live_slowest = max(live_slowest, 30.0)
                live_slowest = max(live_slowest, time.monotonic() - started)
                stop.wait(0.5)

        threads = [threading.Thread(target=load, daemon=True) for _ in range(CONNECTIONS)]
        threads.append(threading.Thread(target=probe_live, daemon=True))
        for thread in threads:
            thread.start()
        time.sleep(min(30.0, SECONDS / 10))  # warm up before the first memory reading
        memory_start = {
            "api": sum(rss_mb(pid) for pid in family(api.pid)),
            "scheduler": rss_mb(scheduler.pid),
        }
        began = time.monotonic()
        restarts = [began + SECONDS / 3, began + 2 * SECONDS / 3]
        freezes = [began + SECONDS / 2]
        frozen = 0
        hostile_pages = 0
        next_append = began
        next_fault = began
        outages = 0
        while time.monotonic() - began < SECONDS:
            now = time.monotonic()
            if restarts and now >= restarts[0]:
                restarts.pop(0)
                embedded.stop()
                print(f"soak: database stopped at {now - began:.0f}s", flush=True)
                time.sleep(10)
                embedded.start()
                outages += 1
                print(f"soak: database started again at {time.monotonic() - began:.0f}s", flush=True)
            if freezes and now >= freezes[0]:
                freezes.pop(0)
                stopped = server_processes(embedded)
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
                print(f"soak: database frozen at {now - began:.0f}s", flush=True)
                time.sleep(10)
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
                frozen += 1
                print(f"soak: database thawed at {time.monotonic() - began:.0f}s", flush=True)
            if now >= next_append and written < len(lines):
                append_lines(csv, lines[written : written + 30])
                written += 30
                next_append = now + 20
            if now >= next_fault:
                provider.queue(MARKETS, Fault(status=429, headers={"Retry-After": "1"}), TRUNCATED)
                provider.queue(TICKERS, Fault(status=500))
                hostile = hostile_page(250 - len(HOSTILE))  # a whole page, some of its coins absurd
                provider.queue(MARKETS, Fault(body=hostile, headers={"Content-Type": "application/json"}))
                hostile_pages += 1
                next_fault = now + 45
            if api.poll() is not None or scheduler.poll() is not None:
                break
            time.sleep(1)
        memory_end = {
            "api": sum(rss_mb(pid) for pid in family(api.pid)),
            "scheduler": rss_mb(scheduler.pid),
        }
        alive = {"api": api.poll() is None, "scheduler": scheduler.poll() is None}
        # a last scheduled pass after the load stops: everything written so far is loaded
        time.sleep(75)
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
        with psycopg.connect(url) as connection:
            csv_rows = connection.execute(
                "SELECT count(*), count(DISTINCT source_record_id) FROM unified_data WHERE source = 'csv:prices'"
            ).fetchone()
            coins = connection.execute(
                "SELECT source, count(*), count(DISTINCT source_record_id) FROM unified_data "
                "WHERE source_type = 'api' GROUP BY source ORDER BY source"
            ).fetchall()
            runs = dict(
                connection.execute("SELECT status, count(*) FROM etl_runs GROUP BY status").fetchall()
            )
        api.send_signal(signal.SIGTERM)
        scheduler.send_signal(signal.SIGTERM)
        api.wait(timeout=60)
        _, scheduler_err = scheduler.communicate(timeout=60)
    embedded.stop()
    shutil.rmtree(embedded.data_dir, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    bad = {
        status: count
        for status, count in statuses.items()
        if (status >= 500 and status != 503) or status == 0
    }
    grown = {name: round(memory_end[name] - memory_start[name], 1) for name in memory_start}
    report = {
        "seconds": SECONDS,
        "requests": sum(statuses.values()),
        "answers": dict(sorted(statuses.items())),
        "slowest_answer_s": round(slowest, 2),
        "database_outages": outages,
        "database_freezes": frozen,
        "slowest_live_s": round(live_slowest, 2),
        "hostile_pages": hostile_pages,
        "csv_rows_written": written,
        "csv_rows_stored": csv_rows,
        "api_sources": coins,
        "runs": runs,
        "alive_until_the_end": alive,
        "rss_mb_start": {k: round(v, 1) for k, v in memory_start.items()},
        "rss_mb_end": {k: round(v, 1) for k, v in memory_end.items()},
        "scheduler_tracebacks": scheduler_err.count("Traceback"),
    }
    checks = {
        "no 5xx but 503, every request answered": not bad,
        "the outages were seen as 503": statuses.get(503, 0) > 0 or outages == 0,
        "no CSV row lost or duplicated": csv_rows == (written, written),
        "each provider coin stored once": all(total == distinct == 400 for _, total, distinct in coins),
        "both processes alive throughout": all(alive.values()),
        "/live always answered within a second": live_slowest < 1.0,
        "no run left running": runs.get("running", 0) == 0,
        "memory flat (< 40 MB growth per process)": all(value < 40 for value in grown.values()),
    }
    print(json.dumps(report, indent=2, default=str))
    for name, passed in checks.items():
        print(f"  {'ok  ' if passed else 'FAIL'} {name}")
    out = REPO / ".kaspero" / "soak-report.json"
    out.write_text(json.dumps({"report": report, "checks": checks}, indent=2, default=str))
    print(f"soak: {sum(checks.values())} of {len(checks)} checks passed; report in {out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
