"""Binance spot klines over real loopback HTTP into a real PostgreSQL: the snapshot on the
schedule, and history backfilled from a real Binance daily file served as klines (compared with
the file value by value)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import stamina

from domain.backfill import BackfillJob, JobState
from domain.records import RawRecord
from domain.runs import RunStatus, RunTrigger
from entrypoints.bootstrap import Kaspero, build
from entrypoints.settings import Settings
from tests.support.provider import LoopbackProvider, loopback_provider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL_DAILY = FIXTURES / "csv" / "Binance_BTCUSDT_d.csv"  # CryptoDataDownload's export of Binance's klines


def real_daily_rows() -> list[dict[str, str]]:
    lines = REAL_DAILY.read_text().splitlines()[1:]  # the URL banner line first
    return list(csv.DictReader(lines))


def as_klines(rows: list[dict[str, str]]) -> list[list[Any]]:
    """The file's rows as the klines Binance serves them: the file is made of exactly these."""
    return [
        [int(row["unix"]), row["open"], row["high"], row["low"], row["close"], row["Volume BTC"],
         int(row["unix"]) + 86_400_000 - 1, row["Volume USDT"], int(row["tradecount"]), "0", "0", "0"]
        for row in rows
    ]  # fmt: skip


@pytest.fixture
def provider() -> Iterator[LoopbackProvider]:
    with loopback_provider() as provider:
        provider.state.now = datetime(2021, 1, 1, tzinfo=UTC)
        provider.state.klines[("BTCUSDT", "1d")] = as_klines(real_daily_rows())
        yield provider


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=2, cap=True):
        yield


def kaspero(database_url: str, provider: LoopbackProvider, **variables: str) -> Kaspero:
    settings = Settings.from_environ(
        {"BINANCE_BASE_URL": f"{provider.url}/binance", "BINANCE_RATE_LIMIT_PER_MINUTE": "60000",
         "ETL_SOURCES": "binance", **variables}
    )  # fmt: skip
    return build(settings, database_url)


def worked(app: Kaspero, job_id: int) -> BackfillJob | None:
    """The job once every worker pass found nothing left to take."""
    while app.work_backfill() is not None:
        pass
    return app.backfills.job(job_id)


def test_the_snapshot_stores_each_listed_pairs_last_closed_bar(
    clean_database: str, provider: LoopbackProvider
) -> None:
    app = kaspero(clean_database, provider)
    try:
        run = app.run_etl(trigger=RunTrigger.CLI)  # ETL_SOURCES=binance
    finally:
        app.close()
    assert run.status is RunStatus.SUCCESS, run.error
    with psycopg.connect(clean_database) as connection:
        rows = connection.execute(
            "SELECT u.source_record_id, m.observed_at, m.bar_seconds, m.open_usd, m.high_usd, m.low_usd, m.price_usd "
            "FROM unified_data u JOIN market_history m ON m.asset_id = u.asset_id AND m.source = u.source "
            "WHERE u.source = 'binance' ORDER BY 1"
        ).fetchall()
    # the cross-reference's assets the loopback Binance lists, each against USDT (not USDT itself)
    assert [row[0] for row in rows] == [
        "ADAUSDT",
        "BTCUSDT",
        "DOGEUSDT",
        "DOTUSDT",
        "ETHUSDT",
        "LTCUSDT",
        "SOLUSDT",
    ]
    last_closed = datetime(2020, 12, 31, 23, 55, tzinfo=UTC)  # the bar of 23:55 closed at 00:00
    assert {row[1] for row in rows} == {last_closed}
    assert {row[2] for row in rows} == {300}
    btc = rows[1]
    close = provider.state.price(0, last_closed)
    assert (btc[6], btc[3]) == (Decimal(f"{close:.8f}"), Decimal(f"{close * 0.99:.8f}"))


def test_a_backfill_of_real_daily_klines_stores_the_file_value_by_value(
    clean_database: str, provider: LoopbackProvider
) -> None:
    app = kaspero(clean_database, provider)
    rows = real_daily_rows()
    first = datetime.fromtimestamp(int(rows[-1]["unix"]) / 1000, UTC)
    last = datetime.fromtimestamp(int(rows[0]["unix"]) / 1000, UTC)
    try:
        app.run_etl(trigger=RunTrigger.CLI)  # the assets, as the snapshot brings them
        job = worked(app, app.backfill(["BTC"], ["binance"], "1d", first, last + timedelta(days=1)))
    finally:
        app.close()
    assert job is not None
    assert (job.state, job.bars) == (JobState.SUCCESS, len(rows))
    (asked,) = provider.requests_to("/binance/api/v3/klines")[-1:]
    assert asked[1]["symbol"] == "BTCUSDT"
    with psycopg.connect(clean_database) as connection:
        stored = {
            observed_at: values
            for observed_at, *values in connection.execute(
                "SELECT observed_at, open_usd, high_usd, low_usd, price_usd, volume_24h_usd, bar_seconds "
                "FROM market_history WHERE source = 'binance:1d'"
            )
        }
    assert len(stored) == len(rows)
    for row in rows:
        moment = datetime.fromtimestamp(int(row["unix"]) / 1000, UTC)
        expected = [Decimal(row[name]) for name in ("open", "high", "low", "close", "Volume USDT")] + [86400]
        assert stored[moment] == expected, row["date"]


def test_binance_documented_kline_normalizes_exactly() -> None:
    from adapters.http_source.binance import KlineNormalizer
    from domain.errors import InvalidRecord

    (row,) = json.loads((FIXTURES / "payloads" / "binance_klines_documented.json").read_text())
    payload = {
        "request": {"symbol": "ETHBTC", "base": "ETH", "quote": "USDT", "interval": "1d"},
        "kline": row,
    }
    raw = RawRecord.of(source="binance:1d", source_record_id="ETHBTC@2017-07-03T00:00:00Z", payload=payload,
                       fetched_at=datetime(2024, 1, 1, tzinfo=UTC), run_id=1)  # fmt: skip
    record = KlineNormalizer().normalize(raw)
    assert (record.open_usd, record.high_usd, record.low_usd, record.price_usd) == (
        Decimal("0.01634790"),
        Decimal("0.80000000"),
        Decimal("0.01575800"),
        Decimal("0.01577100"),
    )
    assert (record.observed_at, record.bar_seconds, record.volume_24h_usd) == (
        datetime(2017, 7, 3, tzinfo=UTC),
        86400,
        Decimal("2434.19055334"),
    )
    broken = dict(payload, kline=[row[0], "1", "0.5", "0.9", "2", *row[5:]])  # high below the close
    with pytest.raises(InvalidRecord, match=r"must lie within low 0\.9 and high 0\.5"):
        KlineNormalizer().normalize(RawRecord.of(source="binance:1d", source_record_id="x@y", payload=broken,
                                                 fetched_at=datetime(2024, 1, 1, tzinfo=UTC), run_id=1))  # fmt: skip


def test_a_pair_binance_does_not_list_is_refused_by_name(
    clean_database: str, provider: LoopbackProvider
) -> None:
    app = kaspero(clean_database, provider, BINANCE_QUOTES="USDC")
    try:
        app.run_etl(trigger=RunTrigger.CLI)
        with psycopg.connect(clean_database) as connection:
            connection.execute("INSERT INTO assets (symbol, name) VALUES ('XRP', 'XRP')")
        job = worked(
            app,
            app.backfill(
                ["XRP"],
                ["binance"],
                "1d",
                datetime(2020, 12, 1, tzinfo=UTC),
                datetime(2021, 1, 1, tzinfo=UTC),
            ),
        )
    finally:
        app.close()
    assert job is not None
    assert job.errors == ("binance refused XRP (XRPUSDC) 1d (HTTP 400): Invalid symbol.",)
