"""One Bitcoin across CoinPaprika, CoinGecko and a CSV; a namesake kept apart; history and endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import falcon.testing
import psycopg
import pytest
import stamina

from entrypoints.api.app import create_app
from entrypoints.bootstrap import Kaspero, build
from entrypoints.settings import Settings
from tests.support.bars import write_bars
from tests.support.market_csv import market_lines, write_csv
from tests.support.provider import coingecko_coin, loopback_provider

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loaded(clean_database: str, tmp_path: Path) -> Iterator[tuple[Kaspero, falcon.testing.TestClient]]:
    with stamina.set_testing(True, attempts=2, cap=True), loopback_provider() as provider:
        provider.state.coins = 20
        namesake = {**coingecko_coin(3), "id": "bitcoin-token", "symbol": "btc", "name": "Bitcoin Token",
                    "current_price": 0.012, "market_cap_rank": 1800}  # fmt: skip
        provider.state.appended["coingecko"] = [namesake]
        csv = write_csv(tmp_path / "history.csv", list(market_lines(5)))  # BTC, ETH, SOL
        app = build(
            Settings(
                coingecko_base_url=f"{provider.url}/coingecko",
                coinpaprika_base_url=f"{provider.url}/coinpaprika",
                coingecko_rate_limit_per_minute=6000,
                rate_limit_requests_per_minute=6000,
                csv_source_path=str(csv),
                asset_crossref_path=REPO / "data" / "reference" / "asset_crossref.csv",
            ),  # type: ignore[call-arg]
            clean_database,
        )
        run = app.run_etl(["coinpaprika", "coingecko", "csv"])
        assert run.status.value == "success", run.error
        yield app, falcon.testing.TestClient(create_app(app.reader, app.probe, app.uow_factory))
        app.close()


def test_bitcoin_is_one_asset_with_an_alias_from_every_source_and_the_namesake_is_apart(
    loaded: tuple[Kaspero, falcon.testing.TestClient],
) -> None:
    _, client = loaded
    found = client.simulate_get("/assets", params={"symbol": "btc"}).json["data"]
    assert [(a["name"], a["needs_review"]) for a in found] == [("Bitcoin", False), ("Bitcoin Token", True)]
    bitcoin = client.simulate_get(f"/assets/{found[0]['id']}").json["data"]
    assert {(a["source"], a["source_asset_id"], a["method"]) for a in bitcoin["aliases"]} == {
        ("coingecko", "bitcoin", "crossref"),
        ("coinpaprika", "btc-bitcoin", "crossref"),
        ("csv:history", "BTC", "crossref"),
    }
    assert {p["source"] for p in bitcoin["prices"]} == {"coingecko", "coinpaprika", "csv:history"}
    # the history file ends in 2023: shown, with its age, but not part of today's consensus
    current = {p["source"]: p for p in bitcoin["prices"] if p["in_consensus"]}
    assert set(current) == {"coingecko", "coinpaprika"}
    prices = sorted(Decimal(p["price_usd"]) for p in current.values())
    assert Decimal(bitcoin["consensus_price_usd"]) == (prices[0] + prices[1]) / 2  # the median of two
    spread = (prices[-1] - prices[0]) / Decimal(bitcoin["consensus_price_usd"]) * 100
    assert Decimal(bitcoin["spread_pct"]) == round(spread, 4)
    assert bitcoin["divergent"] is (spread > 5)
    token = client.simulate_get(f"/assets/{found[1]['id']}").json["data"]
    assert [(a["source"], a["source_asset_id"], a["method"]) for a in token["aliases"]] == [
        ("coingecko", "bitcoin-token", "new")
    ]


def test_market_records_carry_their_asset_and_data_filters_by_it(
    loaded: tuple[Kaspero, falcon.testing.TestClient], clean_database: str
) -> None:
    _, client = loaded
    with psycopg.connect(clean_database) as connection:
        missing = connection.execute(
            "SELECT count(*) FROM unified_data WHERE kind = 'market' AND asset_id IS NULL"
        )
        assert missing.fetchone() == (0,)
        history = connection.execute("SELECT count(*) FROM market_history").fetchone()
    assert history == (20 + 1 + 20 + 15,)  # every observation: both providers and the CSV's 5 days × 3
    bitcoin = client.simulate_get("/assets", params={"symbol": "BTC", "search": "bitcoin"}).json["data"][0]
    rows = client.simulate_get("/data", params={"asset": bitcoin["id"], "page_size": 50}).json["data"]
    assert {row["source"] for row in rows} == {"coingecko", "coinpaprika", "csv:history"}
    assert {row["asset_id"] for row in rows} == {bitcoin["id"]}


def test_history_is_ohlc_per_bucket_per_source_or_together(
    loaded: tuple[Kaspero, falcon.testing.TestClient],
) -> None:
    _, client = loaded
    bitcoin = client.simulate_get("/assets", params={"symbol": "BTC", "search": "bitcoin"}).json["data"][0]
    daily = client.simulate_get(f"/assets/{bitcoin['id']}/history", params={"source": "csv:history"}).json[
        "data"
    ]
    assert [candle["bucket"][:10] for candle in daily] == [
        "2023-01-01", "2023-01-02", "2023-01-03", "2023-01-04", "2023-01-05",
    ]  # fmt: skip
    # a daily file's candles are its own bars: open, high, low and close as the file has them
    rows = [line.split(",") for line in market_lines(5) if ",BTC," in line]
    assert [(c["open"], c["high"], c["low"], c["close"]) for c in daily] == [
        (row[3], row[4], row[5], row[6]) for row in rows
    ]
    weekly = client.simulate_get(
        f"/assets/{bitcoin['id']}/history", params={"source": "consensus", "end": "2023-12-31"}
    ).json["data"]
    assert [(c["source"], c["observations"]) for c in weekly] == [("consensus", 1)] * 5
    assert (
        client.simulate_get(f"/assets/{bitcoin['id']}/history", params={"interval": "1w"}).status_code == 400
    )
    assert client.simulate_get("/assets/999999/history").status_code == 404


def test_hourly_ohlc_matches_buckets_computed_independently(clean_database: str) -> None:
    import random
    from datetime import UTC, datetime, timedelta

    rng = random.Random(5)
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    points = [
        (
            source,
            start + timedelta(minutes=rng.randint(0, 179), seconds=rng.randint(0, 59)),
            Decimal(rng.randint(60000, 70000)) / 1,
        )
        for source in ("coingecko", "coinpaprika")
        for _ in range(40)
    ]
    points = list({(s, t): (s, t, p) for s, t, p in points}.values())  # one price per (source, moment)
    with psycopg.connect(clean_database) as connection:
        run_id = connection.execute(
            "INSERT INTO etl_runs (trigger, status, started_at) VALUES ('cli', 'success', now()) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        asset_id = connection.execute(
            "INSERT INTO assets (symbol, name) VALUES ('BTC', 'Bitcoin') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        write_bars(
            connection,
            [
                (asset_id, source, moment, price, None, None, None, None, run_id)
                for source, moment, price in points
            ],
        )
    app = build(Settings(), clean_database)
    try:
        client = falcon.testing.TestClient(create_app(app.reader, app.probe, app.uow_factory))
        per_source = client.simulate_get(f"/assets/{asset_id}/history", params={"interval": "1h"}).json[
            "data"
        ]
        together = client.simulate_get(
            f"/assets/{asset_id}/history", params={"interval": "1h", "source": "consensus"}
        ).json["data"]
    finally:
        app.close()

    def expected(selected: list[tuple[str, datetime, Decimal]], name: str | None) -> list[tuple]:
        buckets: dict[tuple[datetime, str], list[tuple[datetime, Decimal]]] = {}
        for source, moment, price in selected:
            hour = moment.replace(minute=0, second=0, microsecond=0)
            buckets.setdefault((hour, name or source), []).append((moment, price))
        rows = []
        for (hour, series), values in sorted(buckets.items()):
            values.sort()
            prices = [price for _, price in values]
            rows.append(
                (hour.isoformat(), series, prices[0], max(prices), min(prices), prices[-1], len(prices))
            )
        return rows

    def actual(candles: list[dict]) -> list[tuple]:
        return [
            (
                c["bucket"],
                c["source"],
                Decimal(c["open"]),
                Decimal(c["high"]),
                Decimal(c["low"]),
                Decimal(c["close"]),
                c["observations"],
            )
            for c in candles
        ]

    assert actual(per_source) == expected(points, None)
    assert actual(together) == expected(points, "consensus")
    assert len(per_source) == 6  # three hours, two sources


def test_two_loads_meeting_a_new_coin_at_once_make_one_asset_of_it(pg_pool: Any, clean_database: str) -> None:
    """Two units of work resolve the same new symbol from two sources at the same time: the
    second waits for the first to commit, then finds its asset (without the wait, each made one)."""
    import threading

    from adapters.postgres.uow import PostgresUnitOfWork
    from application.assets import assign_assets
    from domain.records import RecordKind, SourceType, UnifiedRecord

    def record(source: str) -> UnifiedRecord:
        return UnifiedRecord(
            source=source, source_type=SourceType.CSV, source_record_id="NEWCOIN@1", kind=RecordKind.MARKET,
            checksum="0" * 64, symbol="NEWCOIN", asset_name="Brand New Coin", price_usd=Decimal(1),
        )  # fmt: skip

    second_done: list[int | None] = []

    def second() -> None:
        with PostgresUnitOfWork(pg_pool) as uow:
            [found] = assign_assets([record("csv:b")], uow, [])
            uow.commit()
        second_done.append(found.asset_id)

    thread = threading.Thread(target=second)
    with PostgresUnitOfWork(pg_pool) as first:
        [made] = assign_assets([record("csv:a")], first, [])
        thread.start()
        with psycopg.connect(clean_database, autocommit=True) as watcher:
            for _ in range(400):  # until the second is seen waiting for the symbol's lock
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                thread.join(0.025)
            else:
                raise AssertionError("the second load did not wait for the first one's new asset")
        first.commit()
    thread.join(30)
    assert second_done == [made.asset_id]
    with psycopg.connect(clean_database) as connection:
        assert connection.execute("SELECT count(*) FROM assets WHERE symbol = 'NEWCOIN'").fetchone() == (1,)
