"""Long work shows progress: a live display on a terminal (a pseudo-terminal here), `progress`
log events with running totals when not; one summary at the end, in the terminal's format."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.support.market_csv import market_lines, write_csv
from tests.support.processes import REPO, environment, kaspero

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def in_a_terminal(command: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run `command` with its stdout and stderr on a pseudo-terminal; what it drew, as text."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**env, "TERM": "xterm", "COLUMNS": "140"},
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=timeout)
    os.close(main)
    return process.returncode, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "\n")


def test_a_load_on_a_terminal_shows_a_live_display_and_one_table(clean_database: str, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "history.csv", list(market_lines(days=1000, assets=60)))  # 60,000 rows
    env = environment(DATABASE_URL=clean_database, CSV_SOURCE_PATH=str(csv), CSV_BATCH_SIZE="2000")
    env.pop("LOG_FORMAT")  # the default: console logs on a terminal
    code, screen = in_a_terminal([sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once"], env)
    assert code == 0, screen
    shares = [float(value) for value in re.findall(r"csv:history\s+\S*\s+([\d.]+)%", screen)]
    assert len(set(shares)) >= 3, screen[-2000:]  # the share of the file read, growing
    assert shares == sorted(shares)
    assert re.search(r"[\d,]+ records\s+[\d,]+ rows/s", screen)
    assert "run 1: success" in screen
    assert re.search(r"csv:history\s*│\s*success\s*│\s*60,000", screen)  # the summary, as a table
    assert screen.count("run 1: success") == 1
    assert '"event"' not in screen  # console logs, not JSON, on a terminal
    assert "etl_run_finished" in screen


def test_a_load_without_a_terminal_logs_progress_events_and_prints_json_once(
    clean_database: str, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "history.csv", list(market_lines(days=1000, assets=60)))
    env = environment(
        DATABASE_URL=clean_database,
        CSV_SOURCE_PATH=str(csv),
        CSV_BATCH_SIZE="2000",
        PROGRESS_LOG_SECONDS="0.5",
        LOG_LEVEL="DEBUG",
    )
    done = kaspero("etl", "run", "--once", env=env)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    progress = [event for event in events if event["event"] == "progress"]
    assert progress, done.stderr[-2000:]
    assert all(event["source"] == "csv:history" and event["rows_per_s"] > 0 for event in progress)
    assert [event["records"] for event in progress] == sorted(event["records"] for event in progress)
    assert 0 < progress[-1]["done_pct"] <= 100
    batches = [event for event in events if event["event"] == "batch_committed"]
    # 30 full batches, read as columns: the last one, read to the end of the file, marks it read
    # (the row path adds an empty batch for that)
    assert len(batches) == 30
    assert [event["fetched"] for event in batches] == [2000] * 30
    assert all(event["duration_ms"] > 0 for event in batches)  # each batch's own time
    summaries = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1
    assert json.loads(summaries[0])["sources"]["csv:history"]["inserted"] == 60_000


def test_gunicorns_own_lines_come_out_in_kaspero_s_format(database_url: str, tmp_path: Path) -> None:
    import signal
    import urllib.request

    from tests.support.processes import free_port, gunicorn_command, wait_for

    port = free_port()
    env = environment(
        DATABASE_URL=database_url,
        API_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        LOG_FORMAT="json",
    )
    process = subprocess.Popen(
        gunicorn_command(), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/live", process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/live?x=1", timeout=10):
            pass
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is a JSON event
    assert any(
        event.get("logger") == "gunicorn.error" and "Booting worker" in event["event"] for event in events
    )
    access = [event for event in events if event["event"] == "http_access"]
    assert any(
        event["path"] == "/live" and event["status"] == 200 and event["method"] == "GET" for event in access
    )
