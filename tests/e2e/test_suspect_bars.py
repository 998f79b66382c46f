"""Suspect bars over HTTP: three sources of one real file's days, one of them 30 % off on a day
(suspect, left out of the consensus, counted in its run's anomalies), and a day only two sources
hold, 30 % apart (both disputed, both in the consensus)."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from decimal import Decimal
from pathlib import Path

import psycopg

from tests.conftest import TABLES
from tests.support.processes import REPO, environment, get, gunicorn, kaspero

REAL = REPO / "tests" / "fixtures" / "csv" / "BTC-USD.csv"  # Yahoo Finance's daily export, 2014
OFF, TWO = "2014-10-01", "2014-10-08"  # the day c is 30 % off; the day c lacks and b is 30 % off
PRICES = ("Open", "High", "Low", "Close", "Adj Close")


def _rows() -> tuple[list[str], list[dict[str, str]]]:
    with REAL.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or ()), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def _off(row: dict[str, str]) -> dict[str, str]:
    return {**row, **{name: str(Decimal(row[name]) * Decimal("1.3")) for name in PRICES}}


def test_a_bar_off_the_others_is_suspect_and_stays_out_of_the_consensus(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    header, rows = _rows()
    by_day = {row["Date"]: row for row in rows}
    _write(tmp_path / "a.csv", header, rows)
    _write(tmp_path / "b.csv", header, [_off(row) if row["Date"] == TWO else row for row in rows])
    # c without its 30 %-off day at first: its second run appends it, against a calm first run
    _write(tmp_path / "c.csv", header, [row for row in rows if row["Date"] not in (OFF, TWO)])
    options = tmp_path / "csv_options.toml"
    options.write_text('["*.csv"]\nsymbol = "BTC"\nquote = "USD"\n')
    env = environment(
        DATABASE_URL=database_url, CSV_SOURCE_PATH=str(tmp_path / "*.csv"), CSV_OPTIONS_PATH=str(options),
        CSV_WORKERS="1",
    )  # fmt: skip
    assert kaspero("etl", "run", "--once", env=env).returncode == 0
    with (tmp_path / "c.csv").open("a") as handle:
        csv.DictWriter(handle, header, lineterminator="\n").writerow(_off(by_day[OFF]))
    done = kaspero("etl", "run", "--once", "--json", env=env)
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout.strip().splitlines()[-1])
    assert second["sources"]["csv:c"]["fetched"] == 1
    with gunicorn(env) as api:
        bitcoin = get(f"{api}/assets?symbol=BTC")[2]["data"][0]["id"]
        status, _, body = get(f"{api}/assets/{bitcoin}/history?start={OFF}&end={OFF}")
        assert status == 200
        judged = {candle["source"]: (candle["flag"], candle["deviation_pct"]) for candle in body["data"]}
        assert judged == {"csv:a": (None, "0.00"), "csv:b": (None, "0.00"), "csv:c": ("suspect", "30.00")}
        [consensus] = get(f"{api}/assets/{bitcoin}/history?start={OFF}&end={OFF}&source=consensus")[2]["data"]
        assert Decimal(consensus["high"]) == Decimal(by_day[OFF]["High"])  # not c's, 30 % higher
        assert consensus["observations"] == 2  # a's and b's bars, not c's
        assert consensus["flag"] is None
        # one source asked for: still judged against the others
        [alone] = get(f"{api}/assets/{bitcoin}/history?start={OFF}&end={OFF}&source=csv:c")[2]["data"]
        assert (alone["flag"], alone["deviation_pct"]) == ("suspect", "30.00")
        # counted in the run that stored it, against the source's earlier run (none then)
        status, _, found = get(f"{api}/runs/{second['run_id']}/anomalies")
        assert status == 200
        counted = [item for item in found["data"] if item["metric"] == "suspect_bars"]
        # c's one bar, up from none; b's none this run, down from its first run's one: no news
        assert [(item["source"], item["observed"], item["baseline"]) for item in counted] == [("csv:c", 1, 0)]
        _, _, run = get(f"{api}/runs/{second['run_id']}")
        assert {item["source"]: item["suspect_bars"] for item in run["data"]["sources"]}["csv:c"] == 1
        # two sources only, 30 % apart: which is right cannot be told, both disputed, both kept
        two = get(f"{api}/assets/{bitcoin}/history?start={TWO}&end={TWO}")[2]["data"]
        assert {(c["source"], c["flag"], c["deviation_pct"]) for c in two} == {
            ("csv:a", "disputed", "30.00"),
            ("csv:b", "disputed", "30.00"),
        }
        [both] = get(f"{api}/assets/{bitcoin}/history?start={TWO}&end={TWO}&source=consensus")[2]["data"]
        assert Decimal(both["high"]) == Decimal(by_day[TWO]["High"]) * Decimal("1.3")
        # an ordinary day: no flag
        plain = get(f"{api}/assets/{bitcoin}/history?start=2014-09-20&end=2014-09-20")[2]["data"]
        assert {c["flag"] for c in plain} == {None}
        # the file formats say the same
        with urllib.request.urlopen(
            f"{api}/assets/{bitcoin}/history?start={OFF}&end={OFF}&format=csv"
        ) as answer:
            lines = list(csv.DictReader(io.StringIO(answer.read().decode("utf-8"))))
        assert {(line["source"], line["flag"], line["deviation_pct"]) for line in lines} == {
            ("csv:a", "", "0.00"),
            ("csv:b", "", "0.00"),
            ("csv:c", "suspect", "30.00"),
        }
