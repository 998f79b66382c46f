"""DataFrames from a real store: two real price files loaded by the command line, then read back
in-process as polars and pandas frames, value by value against the files."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from entrypoints.bootstrap import Kaspero, build
from tests.conftest import TABLES
from tests.support.processes import REPO, environment, kaspero

FIXTURES = REPO / "tests" / "fixtures" / "csv"


def _yahoo() -> dict[datetime, tuple[Decimal, ...]]:
    with (FIXTURES / "BTC-USD.csv").open(newline="") as handle:
        return {
            datetime.fromisoformat(row["Date"]).replace(tzinfo=UTC): tuple(
                Decimal(row[name]) for name in ("Open", "High", "Low", "Close")
            )
            for row in csv.DictReader(handle)
        }


def _cryptodatadownload() -> dict[datetime, tuple[Decimal, ...]]:
    with (FIXTURES / "Binance_BTCUSDT_d.csv").open(newline="") as handle:
        next(handle)  # the site's address line above the header
        return {
            datetime.fromtimestamp(int(row["unix"]) / 1000, UTC): tuple(
                Decimal(row[name]) for name in ("open", "high", "low", "close")
            )
            for row in csv.DictReader(handle)
        }


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kaspero]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    folder = tmp_path_factory.mktemp("files")
    for name in ("BTC-USD.csv", "Binance_BTCUSDT_d.csv"):
        shutil.copyfile(FIXTURES / name, folder / name)
    env = environment(DATABASE_URL=database_url, CSV_SOURCE_PATH=str(folder / "*.csv"), CSV_WORKERS="1")
    done = kaspero("etl", "run", "--once", env=env)
    assert done.returncode == 0, done.stderr
    kaspero_app = build(database_url=database_url)
    yield kaspero_app
    kaspero_app.close()


def _by_source(rows: list[dict[str, Any]], source: str) -> dict[datetime, tuple[Decimal, ...]]:
    return {
        row["bucket"]: tuple(Decimal(row[name]) for name in ("open", "high", "low", "close"))
        for row in rows
        if row["source"] == source
    }


def test_prices_as_polars_hold_each_file_value_by_value(app: Kaspero) -> None:
    import polars as pl

    frame = app.prices("btc", interval="1d")
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == [
        "bucket", "asset_id", "symbol", "source", "open", "high", "low", "close", "observations", "flag",
        "deviation_pct",
    ]  # fmt: skip
    assert frame.schema["bucket"] == pl.Datetime("us", "UTC")
    assert isinstance(frame.schema["close"], pl.Decimal)
    rows = frame.to_dicts()
    assert {row["symbol"] for row in rows} == {"BTC"}
    assert _by_source(rows, "csv:BTC-USD") == _yahoo()
    assert _by_source(rows, "csv:Binance_BTCUSDT_d") == _cryptodatadownload()
    # a range and one source, as the API's history takes them
    autumn = app.prices("BTC", start="2014-10-01", end="2014-10-05", source="csv:BTC-USD")
    assert autumn["bucket"].to_list() == [datetime(2014, 10, day, tzinfo=UTC) for day in range(1, 6)]


def test_prices_as_pandas_and_records_hold_what_the_store_holds(app: Kaspero) -> None:
    import pandas as pd

    frame = app.prices("BTC", source="consensus", frame="pandas")
    assert isinstance(frame, pd.DataFrame)
    assert str(frame["bucket"].dtype) == "datetime64[us, UTC]"
    assert isinstance(frame["close"].iloc[0], Decimal)  # exact, not a float
    assert set(frame["source"]) == {"consensus"}
    records = app.records("BTC", frame="pandas")
    assert len(records) == len(_yahoo()) + len(_cryptodatadownload())
    assert list(records["id"]) == sorted(records["id"])
    yahoo = records[records["source"] == "csv:BTC-USD"]
    assert {row.observed_at.to_pydatetime(): row.price_usd for row in yahoo.itertuples()} == {
        moment: values[3] for moment, values in _yahoo().items()
    }
    assert records["raw_id"].notna().all()  # each row traced to its raw line
    arrow = app.records(source=["csv:BTC-USD"], frame="arrow")
    assert arrow.num_rows == len(yahoo)
    with pytest.raises(ValueError, match="frame must be one of"):
        app.prices("BTC", frame="excel")
