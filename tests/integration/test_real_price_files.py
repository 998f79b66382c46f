"""The real price exports in tests/fixtures/csv, loaded whole through PostgreSQL, every row's
symbol, quote, time, close and USD volume compared with the file's own values.

Each file's expected values are read here by what is known of that exporter (SOURCES.md), not
by the loader's detection: the two must agree on every row.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import falcon.testing
import psycopg
import pytest

from entrypoints.api.app import create_app
from entrypoints.bootstrap import KINDS, Kaspero, build
from entrypoints.settings import Settings

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "csv"
CROSSREF = REPO / "data" / "reference" / "asset_crossref.csv"

Expected = tuple[str, str, datetime, Decimal, Decimal | None]  # symbol, quote, time, close, USD volume


def _ms(text: str) -> datetime:
    return datetime.fromtimestamp(int(text) / 1000, tz=UTC)


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text[:10]).replace(tzinfo=UTC)


def coingecko_download(path: Path) -> list[Expected]:
    rows = list(csv.DictReader(path.open()))
    return [
        ("BTC", "USD", _day(r["snapped_at"]), Decimal(r["price"]), Decimal(r["total_volume"])) for r in rows
    ]


def cryptodatadownload(path: Path) -> list[Expected]:
    lines = path.read_text().splitlines()[1:]  # a URL banner, then the header
    rows = list(csv.DictReader(lines))
    return [("BTC", "USDT", _ms(r["unix"]), Decimal(r["close"]), Decimal(r["Volume USDT"])) for r in rows]


def yahoo(path: Path) -> list[Expected]:
    rows = list(csv.DictReader(path.open()))
    return [("BTC", "USD", _day(r["Date"]), Decimal(r["Close"]), Decimal(r["Volume"])) for r in rows]


def binance_klines(path: Path) -> list[Expected]:
    rows = list(csv.DictReader(path.open()))
    return [
        ("AVAX", "USDT", _ms(r["open_time"]), Decimal(r["close"]), Decimal(r["quote_volume"])) for r in rows
    ]


def coinmarketcap(path: Path) -> list[Expected]:
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig"), delimiter=";"))
    return [
        ("BTC", "USD", datetime.fromisoformat(r["timeOpen"]), Decimal(r["close"]), Decimal(r["volume"]))
        for r in rows
    ]


def coinmarketcap_scrape(path: Path) -> list[Expected]:
    """CoinMarketCap's historical pages as Kaggle kept them: USD prices, volume in USD beside the
    market cap, named by the asset's whole name (`ethereum_classic_price.csv` is Ethereum Classic)."""
    rows = list(csv.DictReader(path.open()))
    return [
        ("ETC", "USD", datetime.strptime(r["Date"], "%b %d, %Y").replace(tzinfo=UTC), Decimal(r["Close"]),
         Decimal(r["Volume"].replace(",", "")))
        for r in rows
    ]  # fmt: skip


def kraken_ohlcvt(path: Path) -> list[Expected]:
    """Kraken's headerless time,open,high,low,close,volume,trades; XBT is Bitcoin; base volume."""
    rows = list(csv.reader(path.open()))
    return [
        (
            "BTC",
            "USD",
            datetime.fromtimestamp(int(r[0]), tz=UTC),
            Decimal(r[4]),
            Decimal(r[5]) * Decimal(r[4]),
        )
        for r in rows
    ]


def tradingview(path: Path) -> list[Expected]:
    """A TradingView chart export of Bitstamp's BTC/USD: Unix seconds, `Volume` in bitcoin."""
    rows = list(csv.DictReader(path.open()))
    return [
        ("BTC", "USD", datetime.fromtimestamp(int(r["time"]), tz=UTC), Decimal(r["close"]),
         Decimal(r["Volume"]) * Decimal(r["close"]))
        for r in rows
    ]  # fmt: skip


def investing(path: Path) -> list[Expected]:
    """An Investing.com export: `MM/DD/YYYY`, quoted thousands, `Vol.` in bitcoin with K/M/B."""
    scale = {"K": Decimal(1000), "M": Decimal(10**6), "B": Decimal(10**9)}
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    expected = []
    for r in rows:
        close = Decimal(r["Price"].replace(",", ""))
        volume = Decimal(r["Vol."][:-1]) * scale[r["Vol."][-1]]
        day = datetime.strptime(r["Date"], "%m/%d/%Y").replace(tzinfo=UTC)
        expected.append(("BTC", "USD", day, close, volume * close))
    return expected


FILES = {
    "Bitcoin Historical Data.csv": investing,
    "ethereum_classic_price.csv": coinmarketcap_scrape,
    "XBTUSD_1440.csv": kraken_ohlcvt,
    "BITSTAMP_BTCUSD, 1D.csv": tradingview,
    "btc-usd-max.csv": coingecko_download,
    "Binance_BTCUSDT_d.csv": cryptodatadownload,
    "BTC-USD.csv": yahoo,
    "AVAXUSDT-1m-2025-02.csv": binance_klines,
    "Bitcoin_2024_12_8-2025_12_8_historical_data_coinmarketcap.csv": coinmarketcap,
}


def _decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value).replace(",", ""))
    except ArithmeticError:
        return None


def load(database_url: str, directory: Path, pattern: str = "*.csv") -> tuple[Kaspero, object]:
    app = build(
        Settings(csv_source_path=str(directory / pattern), asset_crossref_path=CROSSREF),  # type: ignore[call-arg]
        database_url,
    )
    return app, app.run_etl(["csv"])


@pytest.fixture
def one_file(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    target = tmp_path / request.param
    shutil.copyfile(FIXTURES / request.param, target)
    return target


@pytest.mark.parametrize("one_file", list(FILES), indirect=True)
def test_each_real_export_loads_every_row_with_the_files_own_values(
    clean_database: str, one_file: Path
) -> None:
    app, run = load(clean_database, one_file.parent)
    app.close()
    expected = sorted(FILES[one_file.name](one_file), key=lambda row: row[2])
    assert run.status.value == "success", run.error  # type: ignore[attr-defined]
    with psycopg.connect(clean_database) as connection:
        stored = connection.execute(
            "SELECT symbol, quote_currency, observed_at, price, volume_24h_usd FROM unified_data "
            "WHERE source = %s ORDER BY observed_at",
            (f"csv:{one_file.stem}",),
        ).fetchall()
        quarantined = connection.execute("SELECT count(*) FROM quarantine").fetchone()
        lineage = connection.execute(
            "SELECT r.source = u.source AND r.run_id = u.first_run_id, r.payload, r.line, "
            "r.line_offset FROM unified_data u LEFT JOIN LATERAL raw_csv_line(u.raw_id) r ON true "
            "WHERE u.source = %s ORDER BY u.observed_at",
            (f"csv:{one_file.stem}",),
        ).fetchall()
    assert quarantined == (0,)
    assert len(stored) == len(expected) >= 8
    for row, (symbol, quote, moment, close, volume) in zip(stored, expected, strict=True):
        assert row[:3] == (symbol, quote, moment)
        assert row[3] == close
        assert row[4] == volume
    # lineage: every record reaches the raw row it came from: the file's own line, kept as read
    # where the file has it, holding the file's own close
    assert len(lineage) == len(expected)
    content = one_file.read_bytes()
    for (same_key, payload, line, offset), (*_, close, _volume) in zip(lineage, expected, strict=True):
        assert same_key is True
        assert payload is None
        assert content[offset:].startswith(line.encode())
        assert content[offset + len(line.encode()) : offset + len(line.encode()) + 1] in (b"\r", b"\n", b"")
        cells = next(csv.reader([line], delimiter=";" if line.count(";") > line.count(",") else ","))
        assert close in {_decimal(cell) for cell in cells}


def test_no_bitcoin_volume_lands_in_a_usd_column_and_the_pair_is_split(
    clean_database: str, tmp_path: Path
) -> None:
    """CryptoDataDownload's file has a base volume (BTC) and a quote volume (USDT): the USD
    column takes the quote volume; the base volume stays base volume; `BTC/USDT` is BTC."""
    shutil.copyfile(FIXTURES / "Binance_BTCUSDT_d.csv", tmp_path / "Binance_BTCUSDT_d.csv")
    app, _ = load(clean_database, tmp_path)
    app.close()
    with psycopg.connect(clean_database) as connection:
        row = connection.execute(
            "SELECT u.symbol, u.volume_24h_usd, u.extra, a.symbol, a.name FROM unified_data u "
            "JOIN assets a ON a.id = u.asset_id WHERE u.observed_at = '2020-12-29'"
        ).fetchone()
    assert row is not None
    symbol, usd_volume, extra, asset_symbol, asset_name = row
    assert (symbol, asset_symbol, asset_name) == ("BTC", "BTC", "Bitcoin")
    assert usd_volume == Decimal("1851617219.76823461")
    assert extra["base_volume"] == "69411.59260600"
    assert "volume_usd_from" not in extra  # simply the quote volume of a USD-quoted pair
    assert "quote_volume" not in extra  # it is volume_24h_usd itself


@pytest.fixture
def api(clean_database: str, tmp_path: Path) -> Iterator[falcon.testing.TestClient]:
    for name in ("BTC-USD.csv", "AVAXUSDT-1m-2025-02.csv"):
        shutil.copyfile(FIXTURES / name, tmp_path / name)
    app, run = load(clean_database, tmp_path)
    assert run.status.value == "success"  # type: ignore[attr-defined]
    yield falcon.testing.TestClient(create_app(app.reader, app.probe, app.uow_factory))
    app.close()


def test_daily_history_of_a_daily_ohlc_file_is_the_files_own_ohlc(api: falcon.testing.TestClient) -> None:
    bitcoin = api.simulate_get("/assets", params={"symbol": "BTC"}).json["data"][0]
    daily = api.simulate_get(
        f"/assets/{bitcoin['id']}/history", params={"interval": "1d", "source": "csv:BTC-USD"}
    ).json["data"]
    rows = list(csv.DictReader((FIXTURES / "BTC-USD.csv").open()))
    assert [(c["bucket"][:10], c["open"], c["high"], c["low"], c["close"]) for c in daily] == [
        (r["Date"], r["Open"], r["High"], r["Low"], r["Close"]) for r in rows
    ]


def test_minute_bars_roll_up_into_true_candles(api: falcon.testing.TestClient) -> None:
    avax = api.simulate_get("/assets", params={"symbol": "AVAX"}).json["data"][0]
    [hourly] = api.simulate_get(
        f"/assets/{avax['id']}/history", params={"interval": "1h", "source": "csv:AVAXUSDT-1m-2025-02"}
    ).json["data"]
    rows = list(csv.DictReader((FIXTURES / "AVAXUSDT-1m-2025-02.csv").open()))
    assert hourly["observations"] == len(rows)
    assert Decimal(hourly["open"]) == Decimal(rows[0]["open"])
    assert Decimal(hourly["high"]) == max(Decimal(r["high"]) for r in rows)
    assert Decimal(hourly["low"]) == min(Decimal(r["low"]) for r in rows)
    assert Decimal(hourly["close"]) == Decimal(rows[-1]["close"])
    # the high of the hour is a bar's own high, above every close in it
    assert Decimal(hourly["high"]) > max(Decimal(r["close"]) for r in rows)


def test_data_shows_and_filters_the_quote_currency(api: falcon.testing.TestClient) -> None:
    body = api.simulate_get("/data", params={"quote_currency": "usdt", "page_size": 100}).json
    assert body["pagination"]["total_items"] == 40
    assert {record["quote_currency"] for record in body["data"]} == {"USDT"}
    assert {record["symbol"] for record in body["data"]} == {"AVAX"}
    first = body["data"][0]
    assert first["price"] == first["price_usd"]
    assert first["bar_seconds"] == 60


def test_a_stale_history_file_beside_live_quotes_is_not_divergent(
    clean_database: str, tmp_path: Path
) -> None:
    """A daily file ending in 2020 and a quote of today disagree by thousands of percent, but
    they are years apart: the old price is shown with its age and left out of the consensus."""
    from datetime import timedelta

    from entrypoints.api.app import ApiOptions

    shutil.copyfile(FIXTURES / "Binance_BTCUSDT_d.csv", tmp_path / "Binance_BTCUSDT_d.csv")
    app, _ = load(clean_database, tmp_path)
    with psycopg.connect(clean_database) as connection:  # a live quote of today, as an API source stores it
        asset = connection.execute("SELECT id FROM assets WHERE symbol = 'BTC'").fetchone()[0]  # type: ignore[index]
        connection.execute(
            "INSERT INTO unified_data (source_type, source, source_record_id, kind, symbol, price_usd, price,"
            " quote_currency, observed_at, published_at, checksum, raw_id, first_run_id, last_run_id, asset_id)"
            " VALUES ('api', 'coingecko', 'bitcoin', 'market', 'BTC', 91000, 91000, 'USD', now(), now(), 'x', 1, 1, 1, %s)",
            (asset,),
        )
    now = datetime.now(UTC)
    client = falcon.testing.TestClient(
        create_app(
            app.reader,
            app.probe,
            app.uow_factory,
            ApiOptions(source_kinds=tuple(KINDS), consensus_window=timedelta(minutes=15)),
            lambda: now,
        )
    )
    view = client.simulate_get(f"/assets/{asset}").json["data"]
    app.close()
    assert view["divergent"] is False
    assert view["consensus_price_usd"] == "91000"
    prices = {price["source"]: price for price in view["prices"]}
    assert prices["coingecko"]["in_consensus"] is True
    stale = prices["csv:Binance_BTCUSDT_d"]
    assert stale["in_consensus"] is False
    assert stale["age_seconds"] > 5 * 365 * 86400


def test_hourly_bars_roll_up_into_true_daily_candles(clean_database: str, tmp_path: Path) -> None:
    """Two days of hourly BTC/USDT bars (a CryptoDataDownload-shaped hourly file with a banner):
    each daily candle is the first bar's open, the highest high, the lowest low, the last close."""
    import random

    rng = random.Random(11)
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount",
    ]
    bars = []
    price = Decimal("40000")
    for hour in range(48):
        opened = price
        close = (opened * Decimal(str(1 + rng.uniform(-0.01, 0.01)))).quantize(Decimal("0.01"))
        high = max(opened, close) + Decimal(str(rng.randint(1, 200)))
        low = min(opened, close) - Decimal(str(rng.randint(1, 200)))
        moment = datetime(2021, 3, 1, tzinfo=UTC) + timedelta(hours=hour)
        bars.append((moment, opened, high, low, close))
        lines.append(
            f"{int(moment.timestamp()) * 1000},{moment:%Y-%m-%d %H:%M:%S},BTC/USDT,{opened},{high},{low},{close},1.5,60000,10"
        )
        price = close
    newest_first = "\n".join(reversed(lines[2:]))  # as CryptoDataDownload writes them
    (tmp_path / "Binance_BTCUSDT_1h.csv").write_text(f"{lines[0]}\n{lines[1]}\n{newest_first}\n")
    app, run = load(clean_database, tmp_path)
    try:
        assert run.status.value == "success", run.error  # type: ignore[attr-defined]
        client = falcon.testing.TestClient(create_app(app.reader, app.probe, app.uow_factory))
        bitcoin = client.simulate_get("/assets", params={"symbol": "BTC"}).json["data"][0]
        daily = client.simulate_get(
            f"/assets/{bitcoin['id']}/history", params={"interval": "1d", "source": "csv:Binance_BTCUSDT_1h"}
        ).json["data"]
    finally:
        app.close()
    expected = []
    for day in (bars[:24], bars[24:]):
        expected.append(
            (
                str(day[0][1]),
                str(max(bar[2] for bar in day)),
                str(min(bar[3] for bar in day)),
                str(day[-1][4]),
                24,
            )
        )
    assert [(c["open"], c["high"], c["low"], c["close"], c["observations"]) for c in daily] == expected
