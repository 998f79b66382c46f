"""Reads from a real streaming standby (`DATABASE_READ_URL`): the API's reads are served by it,
they go on while the primary is down (writes answer 503), the standby's lag is in `/health`,
and writes come back with the primary."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from tests.support.processes import REPO, environment, get, gunicorn, kaspero
from tests.support.standby import primary_with_standby

SAMPLE = REPO / "data" / "market_history.csv"
KEY = "replica-key"


def _post_run(api: str) -> int:
    request = urllib.request.Request(
        f"{api}/runs",
        data=b"{}",
        headers={"Content-Type": "application/json", "X-API-Key": KEY},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as ex:
        return int(ex.code)


def _until(answer: Any, wanted: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    found = answer()
    while found != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        found = answer()
    return found


def test_reads_come_from_the_standby_go_on_without_the_primary_and_fall_back_without_the_standby(
    tmp_path: Path,
) -> None:
    data = tmp_path / "market_history.csv"
    shutil.copyfile(SAMPLE, data)
    with primary_with_standby() as pair:
        env = environment(
            DATABASE_URL=pair.primary_url,
            DATABASE_READ_URL=pair.standby_url,
            CSV_SOURCE_PATH=str(data),
            API_KEYS=KEY,
        )
        assert kaspero("etl", "run", "--once", env=env).returncode == 0
        pair.caught_up()
        with gunicorn(env) as api:
            _, _, page = get(f"{api}/data?page_size=1")
            total = page["pagination"]["total_items"]
            _, _, found = get(f"{api}/assets?symbol=BTC")
            bitcoin = found["data"][0]
            # the standby holds its replay: what the primary writes now, the API does not see
            with psycopg.connect(pair.standby_url, autocommit=True) as standby:
                standby.execute("SELECT pg_wal_replay_pause()")
            with psycopg.connect(pair.primary_url, autocommit=True) as primary:
                primary.execute(
                    "UPDATE assets SET name = 'Renamed on the primary' WHERE id = %s", (bitcoin["id"],)
                )
                primary.execute("SELECT pg_switch_wal()")  # ship it: received, not replayed
            with psycopg.connect(pair.standby_url, autocommit=True) as standby:
                received = _until(
                    lambda: standby.execute(
                        "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
                    ).fetchone()[0],  # type: ignore[index]
                    True,
                )
            assert received
            _, _, seen = get(f"{api}/assets/{bitcoin['id']}")
            assert seen["data"]["name"] == bitcoin["name"]  # served by the standby
            status, _, health = get(f"{api}/health")
            [replica] = health["replicas"]
            assert replica["reachable"] is True
            assert replica["lag_seconds"] > 0  # behind, and said so
            assert "postgres" not in replica["name"].split("/")[0]  # where, never who
            with psycopg.connect(pair.standby_url, autocommit=True) as standby:
                standby.execute("SELECT pg_wal_replay_resume()")
            pair.caught_up()
            renamed = _until(
                lambda: get(f"{api}/assets/{bitcoin['id']}")[2]["data"]["name"],
                "Renamed on the primary",
            )
            assert renamed == "Renamed on the primary"

            pair.stop_primary()
            # reads answered by the standby alone
            status, _, page = get(f"{api}/data?page_size=1")
            assert (status, page["pagination"]["total_items"]) == (200, total)
            status, _, history = get(f"{api}/assets/{bitcoin['id']}/history?interval=1d&limit=5")
            assert (status, len(history["data"])) == (200, 5)
            assert get(f"{api}/quarantine")[0] == 200
            # writes, and what must see them, answer 503 saying the database is away
            assert _post_run(api) == 503
            status, _, health = get(f"{api}/health")
            assert (status, health["status"], health["database"]) == (503, "unhealthy", False)
            assert health["replicas"][0]["reachable"] is True

            pair.start_primary()
            assert _until(lambda: _post_run(api), 202) == 202  # writes again once it is back
            # every worker's pools reconnect on their own (each worker answers in turn)
            assert _until(lambda: get(f"{api}/health")[2]["database"], True) is True
            assert json.dumps(get(f"{api}/health")[2]).count(pair.standby_url) == 0  # no URL with its user

            pair.stop_standby()
            # without the standby, reads fall back on the primary; health says what is missing
            status, _, page = get(f"{api}/data?page_size=1")
            assert (status, page["pagination"]["total_items"]) == (200, total)
            status, _, health = get(f"{api}/health")
            assert (status, health["replicas"][0]["reachable"]) == (200, False)
            assert health["status"] == "degraded"
            assert any(reason.startswith("replica ") for reason in health["reasons"])
