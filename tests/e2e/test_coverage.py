"""Coverage of a real file's history over HTTP and the command line: the gap left by deleting
stored bars is reported exactly, at daily and hourly buckets, and from a requested start."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from tests.conftest import TABLES
from tests.support.processes import REPO, environment, get, gunicorn, kaspero

REAL = REPO / "tests" / "fixtures" / "csv" / "BTC-USD.csv"  # Yahoo Finance's daily export, 2014
DELETED = [date(2014, 10, 1), date(2014, 10, 2), date(2014, 10, 3)]


def _days() -> list[date]:
    with REAL.open(newline="") as handle:
        return sorted(date.fromisoformat(row["Date"]) for row in csv.DictReader(handle))


def _midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


@pytest.fixture(scope="module")
def served(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    folder = tmp_path_factory.mktemp("files")
    shutil.copyfile(REAL, folder / REAL.name)
    env = environment(DATABASE_URL=database_url, CSV_SOURCE_PATH=str(folder / "*.csv"))
    assert kaspero("etl", "run", "--once", env=env).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as connection:
        gone = connection.execute(
            "DELETE FROM unified_data WHERE observed_at::date = ANY(%s) RETURNING 1", (DELETED,)
        ).fetchall()
    assert len(gone) == len(DELETED)
    with gunicorn(env) as api:
        yield api, env


def test_a_gap_made_by_deleting_bars_is_reported_exactly(served: tuple[str, dict[str, str]]) -> None:
    api, env = served
    days = _days()
    bitcoin = get(f"{api}/assets?symbol=BTC")[2]["data"][0]["id"]
    status, _, body = get(f"{api}/assets/{bitcoin}/coverage?interval=1d")
    assert status == 200
    [source] = body["data"]["sources"]
    assert source["source"] == "csv:BTC-USD"
    assert source["buckets"] == len(days) - len(DELETED)
    assert source["covered"] == [
        {"start": _midnight(days[0]), "end": _midnight(DELETED[0]), "buckets": (DELETED[0] - days[0]).days},
        {
            "start": _midnight(DELETED[-1] + timedelta(days=1)),
            "end": _midnight(days[-1] + timedelta(days=1)),
            "buckets": (days[-1] - DELETED[-1]).days,
        },
    ]
    assert source["gaps"] == [
        {"start": _midnight(DELETED[0]), "end": _midnight(DELETED[-1] + timedelta(days=1)), "buckets": 3}
    ]
    # hourly: each daily bar spans its 24 hours
    hourly = get(f"{api}/assets/{bitcoin}/coverage?interval=1h")[2]["data"]["sources"][0]
    assert (hourly["buckets"], hourly["gaps"][0]["buckets"]) == (24 * (len(days) - 3), 72)
    # from a start before the file: the days before its first row are missing too
    start = days[0] - timedelta(days=7)
    since = get(f"{api}/assets/{bitcoin}/coverage?interval=1d&start={start.isoformat()}")[2]["data"]
    assert since["sources"][0]["gaps"][0] == {
        "start": _midnight(start),
        "end": _midnight(days[0]),
        "buckets": 7,
    }
    assert since["sources"][0]["missing"] == 7 + 3
    # a source that holds nothing in the range: all of it is one gap
    none = get(f"{api}/assets/{bitcoin}/coverage?source=coingecko&start=2014-10-01&end=2014-10-10")[2]["data"]
    assert none["sources"] == [
        {"source": "coingecko", "buckets": 0, "missing": 10, "first": None, "last": None, "covered": [],
         "gaps": [{"start": _midnight(date(2014, 10, 1)), "end": _midnight(date(2014, 10, 11)), "buckets": 10}],
         "empty": []}
    ]  # fmt: skip
    assert get(f"{api}/assets/{bitcoin}/coverage?start=2014-10-02&end=2014-10-01")[0] == 400
    # the command line says the same
    done = kaspero("coverage", "btc", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0] == json.loads(json.dumps(body["data"]))
    text = kaspero("coverage", "BTC", env=env).stdout
    assert "3 missing in 1 gap(s)" in text
    assert "gap 2014-10-01T00:00:00+00:00 .. 2014-10-04T00:00:00+00:00 (3)" in text
