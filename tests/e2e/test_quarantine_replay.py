"""`kaspero quarantine replay` on a real file: rows quarantined under one rule load once the rule
changes, once each, with their lineage to the raw rows first read, and the quarantine empties."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import psycopg

from tests.conftest import TABLES
from tests.support.processes import REPO, environment, get, gunicorn, kaspero

REAL = REPO / "tests" / "fixtures" / "csv" / "BTC-USD.csv"  # Yahoo Finance's export, 2014-09/10


def _file_closes() -> dict[str, Decimal]:
    with REAL.open(newline="", encoding="utf-8") as handle:
        return {row["Date"]: Decimal(row["Close"]) for row in csv.DictReader(handle)}


def test_a_replay_stores_what_the_current_rules_pass_once_with_its_lineage(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    data = tmp_path / "BTC-USD.csv"
    data.write_bytes(REAL.read_bytes())
    closes = _file_closes()
    env = environment(DATABASE_URL=database_url, CSV_SOURCE_PATH=str(data))
    # a bound below the file's prices: the rows above it are quarantined, naming the setting
    strict = kaspero("etl", "run", "--once", env={**env, "PLAUSIBLE_MAX_PRICE_USD": "420"})
    with psycopg.connect(database_url) as connection:
        quarantined = connection.execute(
            "SELECT source_record_id, reason FROM quarantine WHERE source = 'csv:BTC-USD'"
        ).fetchall()
        stored_before = connection.execute("SELECT count(*) FROM unified_data").fetchone()[0]
        raws_before = connection.execute(
            "SELECT id, line, run_id FROM raw_csv_lines WHERE source = 'csv:BTC-USD' ORDER BY id"
        ).fetchall()
        quarantined_lines = dict(
            connection.execute("SELECT source_record_id, raw_id FROM quarantine WHERE source = 'csv:BTC-USD'")
        )
    assert strict.returncode == 0, strict.stderr  # a few rows quarantined: the file loads
    assert 5 < len(quarantined) < len(closes)
    assert all("PLAUSIBLE_MAX_PRICE_USD" in reason for _, reason in quarantined)
    assert stored_before == len(closes) - len(quarantined)
    # only the entries this reason names, under the default bound
    replay = kaspero("quarantine", "replay", "--reason", "plausible_max_price", "--json", env=env)
    assert replay.returncode == 0, replay.stderr
    run = json.loads(replay.stdout.strip().splitlines()[-1])
    assert (run["status"], run["trigger"]) == ("success", "replay")
    counters = run["sources"]["csv:BTC-USD"]
    assert (counters["fetched"], counters["inserted"], counters["quarantined"]) == (
        len(quarantined),
        len(quarantined),
        0,
    )
    assert f"{len(quarantined)} entries before, 0 after" in replay.stderr
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        rows = connection.execute(
            "SELECT source_record_id, checksum, raw_id, price_usd, first_run_id FROM unified_data "
            "WHERE source = 'csv:BTC-USD'"
        ).fetchall()
        raws_after = connection.execute(
            "SELECT id, line, run_id FROM raw_csv_lines WHERE source = 'csv:BTC-USD' ORDER BY id"
        ).fetchall()
        checkpoint_run = connection.execute(
            "SELECT run_id FROM checkpoints WHERE source = 'csv:BTC-USD'"
        ).fetchone()[0]
    assert raws_after == raws_before  # no raw line stored again: each record points at its first one
    lines = {raw_id: line for raw_id, line, _ in raws_before}
    assert len(rows) == len(closes)  # every row of the file, once
    for key, _checksum, raw_id, price, _first_run in rows:
        day = key.partition("@")[2][:10]
        assert lines[raw_id].startswith(day)  # its own line of the file
        assert price == closes[day]  # as the file says
        if key in quarantined_lines:  # replayed: the line it was quarantined from
            assert raw_id == quarantined_lines[key]
    assert {first_run for *_, first_run in rows} == {1, run["run_id"]}
    assert checkpoint_run == 1  # the file's checkpoint is the load's, untouched
    # nothing left to read again: a second replay stores nothing
    again = kaspero("quarantine", "replay", "--json", env=env)
    run = json.loads(again.stdout.strip().splitlines()[-1])
    assert run["sources"]["csv:BTC-USD"]["fetched"] == 0
    # a source that is not enabled is refused with the setting that names sources
    unknown = kaspero("quarantine", "replay", "--source", "csv:nope", env=env)
    assert unknown.returncode == 2
    assert "CSV_SOURCE_PATH" in unknown.stderr


def test_a_replay_asked_over_http_is_run_by_a_scheduler_and_answered_on_its_request(
    database_url: str, tmp_path: Path
) -> None:
    import subprocess
    import sys
    import time
    import urllib.request

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    data = tmp_path / "BTC-USD.csv"
    data.write_bytes(REAL.read_bytes())
    env = environment(
        DATABASE_URL=database_url,
        CSV_SOURCE_PATH=str(data),
        API_KEYS="replay-key",
        ETL_SCHEDULE_MINUTES="600",
    )
    assert kaspero("etl", "run", "--once", env={**env, "PLAUSIBLE_MAX_PRICE_USD": "420"}).returncode == 0

    def post(url: str, body: dict[str, str], key: str | None) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **({"X-API-Key": key} if key else {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as ex:
            return ex.code, json.loads(ex.read())

    with gunicorn(env) as api:
        assert post(f"{api}/quarantine/replay", {}, None)[0] == 401
        status, problem = post(f"{api}/quarantine/replay", {"source": "nope:x"}, "replay-key")
        assert (status, problem.get("invalid_params")) == (
            400,
            [{"name": "source", "reason": problem["detail"]}],
        ), problem
        status, queued = post(f"{api}/quarantine/replay", {"source": "csv:BTC-USD"}, "replay-key")
        assert status == 202
        request = queued["data"]
        assert (request["status"], request["replay"], request["sources"]) == (
            "queued",
            {"reason": None},
            ["csv:BTC-USD"],
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "scheduler", "--wait-first"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                _, _, answer = get(f"{api}{request['links']['self']}")
                if answer["data"]["status"] != "queued" and answer["data"]["status"] != "running":
                    break
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        assert answer["data"]["status"] == "done", answer
        _, _, run = get(f"{api}/runs/{answer['data']['run_id']}")
        assert (run["data"]["trigger"], run["data"]["status"]) == ("replay", "success")
        _, _, left = get(f"{api}/quarantine")
        assert left["data"] == []
        _, _, health = get(f"{api}/health")
        # the replay is not the source's newest run: health still judges the load
        assert health["sources"]["csv"]["last_run_id"] == 1
