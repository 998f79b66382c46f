"""A bar is stored once, as its record (migration 0022): `market_history` is the view of the
records that are bars, one per (asset, source, time), the first record stored; the candles follow
every insert, update and delete of `unified_data`; the migration keeps the bars and candles a
database already holds, and its rollback writes them back as a table of their own."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import stamina

from domain.runs import RunStatus
from entrypoints.bootstrap import build, migrate
from entrypoints.settings import Settings
from tests.integration.test_history_follows_records import FOLDED, STORED
from tests.support.provider import coingecko_coin, loopback_provider
from tests.support.schema import roll_back

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "csv"
CROSSREF = REPO / "data" / "reference" / "asset_crossref.csv"
MINUTES = FIXTURES / "AVAXUSDT-1m-2025-02.csv"  # Binance's one-minute klines: the candles fold them
DAYS = FIXTURES / "BTC-USD.csv"  # Yahoo's daily bars: read as they are
BARS = """
SELECT asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd, open_usd, high_usd, low_usd,
       bar_seconds
FROM market_history ORDER BY 1, 2, 3
"""


def load(url: str, path: Path) -> None:
    settings = Settings(csv_source_path=str(path), asset_crossref_path=CROSSREF, log_level="WARNING")  # type: ignore[call-arg]
    app = build(settings, url)
    try:
        run = app.run_etl(["csv"])
    finally:
        app.close()
    assert run.status is RunStatus.SUCCESS, run.error


def rows(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(query, params).fetchall()


def kind_of_history(url: str) -> str:
    [(kind,)] = rows(url, "SELECT relkind::text FROM pg_class WHERE relname = 'market_history'")
    return kind


def test_the_migration_keeps_the_bars_and_candles_and_its_rollback_writes_them_back(
    database: str, tmp_path: Path
) -> None:
    migrate(database)
    minutes = tmp_path / MINUTES.name
    minutes.write_bytes(MINUTES.read_bytes())
    load(database, minutes)
    bars, candles = rows(database, BARS), rows(database, STORED)
    assert len(bars) == len(MINUTES.read_text().splitlines()) - 1
    assert candles

    roll_back(
        database, "0022.a-bar-stored-once"
    )  # the history a table of its own again, as before migration 0022
    assert kind_of_history(database) == "p"  # partitioned by year
    assert rows(database, BARS) == bars
    assert rows(database, STORED) == candles

    migrate(database)  # forward: the bars are the records', the candles folded again alike
    assert kind_of_history(database) == "v"
    assert rows(database, BARS) == bars
    assert rows(database, STORED) == candles == rows(database, FOLDED)
    days = tmp_path / DAYS.name
    days.write_bytes(DAYS.read_bytes())
    load(database, tmp_path / "*.csv")  # a bar is written once now: its record
    after = rows(database, BARS)
    assert len(after) == len(bars) + len(DAYS.read_text().splitlines()) - 1
    assert rows(database, STORED) == rows(database, FOLDED)

    roll_back(
        database, "0022.a-bar-stored-once"
    )  # back: every bar a row of the table again, its candles as they were
    assert kind_of_history(database) == "p"
    assert rows(database, BARS) == after
    assert rows(database, STORED) == rows(database, FOLDED)
    partitions = rows(
        database,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'market_history'::regclass ORDER BY 1",
    )
    assert partitions == [("market_history_y2014",), ("market_history_y2025",)]


def test_of_two_records_of_one_bar_the_first_is_the_bar_whatever_happens_to_the_other(
    database: str, tmp_path: Path
) -> None:
    """Two rows of one file name the same bar (the USD and USDT quotes of one coin at one time,
    two records of one source): the history shows one bar, the first record's, and the candles
    fold it once. Updating the other changes nothing there; updating the first changes the bar
    and its candles; deleting the first makes the other the bar."""
    migrate(database)
    path = tmp_path / "quotes.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close\n"
        "2025-02-01 00:00:00,BTCUSD,100,110,90,105\n"
        "2025-02-01 00:00:00,BTCUSDT,101,111,91,106\n"
        "2025-02-01 00:01:00,BTCUSD,105,120,100,115\n"
    )
    load(database, path)
    records = rows(
        database,
        "SELECT id, source_record_id FROM unified_data WHERE observed_at = '2025-02-01 00:00+00' ORDER BY id",
    )
    assert len(records) == 2  # both records kept, as `/data` shows them
    (first, _), (second, _) = records
    history = "SELECT record_id, price_usd, high_usd FROM market_history ORDER BY observed_at"
    hour = "SELECT open, high, low, close, bars FROM market_candles WHERE seconds = 3600"
    assert rows(database, history)[0] == (first, Decimal("105"), Decimal("110"))
    assert rows(database, hour) == [(Decimal("100"), Decimal("120"), Decimal("90"), Decimal("115"), 2)]

    with psycopg.connect(database) as connection:
        connection.execute("UPDATE unified_data SET high_usd = 500, price_usd = 1 WHERE id = %s", (second,))
    assert rows(database, history)[0] == (first, Decimal("105"), Decimal("110"))
    assert rows(database, hour) == [(Decimal("100"), Decimal("120"), Decimal("90"), Decimal("115"), 2)]

    with psycopg.connect(database) as connection:
        connection.execute("UPDATE unified_data SET high_usd = 130 WHERE id = %s", (first,))
    assert rows(database, hour) == [(Decimal("100"), Decimal("130"), Decimal("90"), Decimal("115"), 2)]

    with psycopg.connect(database) as connection:
        connection.execute("DELETE FROM unified_data WHERE id = %s", (first,))
    assert rows(database, history)[0] == (second, Decimal("1"), Decimal("500"))
    assert rows(database, hour) == [(Decimal("101"), Decimal("500"), Decimal("91"), Decimal("115"), 2)]
    assert rows(database, STORED) == rows(database, FOLDED)


def test_a_providers_snapshots_keep_every_runs_observation_while_the_record_is_the_latest(
    database: str,
) -> None:
    """A snapshot source keeps one record per coin, updated by each run, and the history keeps
    every run's observation (`market_snapshots`): a run observing a new time adds a bar, a run
    revising the price of a time already observed moves that bar, and the candles follow."""
    migrate(database)
    with stamina.set_testing(True, attempts=2, cap=True), loopback_provider() as provider:
        provider.state.coins = 3

        def run(updated: str, price: float) -> None:
            provider.state.broken[0] = {**coingecko_coin(0), "last_updated": updated, "current_price": price}
            app = build(
                Settings(
                    coingecko_base_url=f"{provider.url}/coingecko",
                    coingecko_rate_limit_per_minute=6000,
                    rate_limit_requests_per_minute=6000,
                    asset_crossref_path=CROSSREF,
                    log_level="WARNING",
                ),  # type: ignore[call-arg]
                database,
            )
            try:
                done = app.run_etl(["coingecko"])
            finally:
                app.close()
            assert done.status is RunStatus.SUCCESS, done.error

        run("2025-03-01T10:05:00Z", 90000.0)
        run("2025-03-01T10:10:00Z", 91000.0)
        run("2025-03-01T10:10:00Z", 91500.0)  # the provider revised its last observation
    records = rows(database, "SELECT price_usd FROM unified_data WHERE source_record_id = 'bitcoin'")
    assert records == [(Decimal("91500.0"),)]  # `/data`: the latest snapshot
    history = rows(
        database,
        "SELECT observed_at, price_usd, record_id FROM market_history h JOIN assets a ON a.id = h.asset_id"
        " WHERE a.symbol = 'BTC' AND h.source = 'coingecko' ORDER BY 1",
    )
    assert [(moment.minute, price, record) for moment, price, record in history] == [
        (5, Decimal("90000.0"), None),
        (10, Decimal("91500.0"), None),
    ]
    hour = rows(
        database,
        "SELECT open, high, low, close, bars FROM market_candles c JOIN assets a ON a.id = c.asset_id"
        " WHERE a.symbol = 'BTC' AND c.source = 'coingecko' AND c.seconds = 3600",
    )
    assert hour == [(Decimal("90000.0"), Decimal("91500.0"), Decimal("90000.0"), Decimal("91500.0"), 2)]
    assert rows(database, STORED) == rows(database, FOLDED)
