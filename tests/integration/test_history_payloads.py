"""Real history answers of CoinGecko and CoinPaprika, served by the loopback provider for one
window each and read by the history adapters over real HTTP: what they make of each point is
compared with the file, value by value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

from adapters.http_source.coingecko import CoinGeckoHistory
from adapters.http_source.coinpaprika import CoinPaprikaHistory
from adapters.http_source.rate_limit import TokenBucket
from adapters.http_source.transport import ProviderClient
from domain.assets import Interval
from domain.backfill import Window
from tests.support.provider import Fault, loopback_provider

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def client(base: str) -> ProviderClient:
    return ProviderClient("test", httpx.Client(base_url=base), TokenBucket(60_000))


def window(kind: str, provider_id: str, interval: Interval, start: datetime, end: datetime) -> Window:
    return Window(1, 1, 1, "X", kind, provider_id, interval, start, end)


def test_a_real_market_chart_range_answer_becomes_samples_value_by_value() -> None:
    body = (PAYLOADS / "coingecko_market_chart_range.json").read_bytes()
    real = json.loads(body)
    with loopback_provider() as provider:
        provider.queue("/coingecko/coins/x-coin/market_chart/range", Fault(body=body))
        history = CoinGeckoHistory(client(f"{provider.url}/coingecko"), lambda: NOW)
        asked = window(
            "coingecko",
            "x-coin",
            Interval.HOUR,
            datetime(2021, 6, 3, tzinfo=UTC),
            datetime(2021, 6, 4, tzinfo=UTC),
        )
        page = history.fetch(asked, run_id=1)
    records = [history.normalizer.normalize(raw) for raw in page.raws]
    assert [record.observed_at for record in records] == [
        datetime.fromtimestamp(point[0] / 1000, UTC) for point in real["prices"]
    ]
    # the numbers as the provider wrote them
    assert [str(record.price_usd) for record in records] == ["0.8201346624954003", "0.8096978545029869"]
    assert [record.market_cap_usd for record in records] == [
        Decimal("1223507820.383275"),
        Decimal("1210972881.4928021"),
    ]
    assert [record.volume_24h_usd for record in records] == [
        Decimal("163426828.00299588"),
        Decimal("157618689.0971025"),
    ]
    assert {record.bar_seconds for record in records} == {None}  # samples, not bars
    assert next(raw.source_record_id for raw in page.raws) == "x-coin@2021-06-03T15:11:28.498000Z"


def test_real_coinpaprika_history_answers_become_bars_and_samples_value_by_value() -> None:
    bars = (PAYLOADS / "coinpaprika_ohlcv_historical.json").read_bytes()
    samples = (PAYLOADS / "coinpaprika_tickers_historical.json").read_bytes()
    with loopback_provider() as provider:
        provider.queue("/coinpaprika/coins/btc-bitcoin/ohlcv/historical", Fault(body=bars))
        provider.queue("/coinpaprika/tickers/x-coin/historical", Fault(body=samples))
        history = CoinPaprikaHistory(client(f"{provider.url}/coinpaprika"), lambda: NOW)
        daily = history.fetch(
            window(
                "coinpaprika",
                "btc-bitcoin",
                Interval.DAY,
                datetime(2019, 1, 1, tzinfo=UTC),
                datetime(2019, 1, 21, tzinfo=UTC),
            ),
            run_id=1,
        )
        hourly = history.fetch(
            window(
                "coinpaprika",
                "x-coin",
                Interval.HOUR,
                datetime(2021, 2, 14, tzinfo=UTC),
                datetime(2021, 2, 15, tzinfo=UTC),
            ),
            run_id=1,
        )
    (bar,) = [history.normalizer.normalize(raw) for raw in daily.raws]
    assert (bar.observed_at, bar.bar_seconds) == (datetime(2019, 1, 1, tzinfo=UTC), 86400)
    assert (bar.open_usd, bar.high_usd, bar.low_usd, bar.price_usd) == (
        Decimal("3743.13383814"),
        Decimal("3848.768792"),
        Decimal("3695.32467935"),
        Decimal("3846.6792974"),
    )
    assert (bar.volume_24h_usd, bar.market_cap_usd) == (Decimal("3062073034"), Decimal("65338972677"))
    (sample,) = [history.normalizer.normalize(raw) for raw in hourly.raws]
    assert (sample.observed_at, sample.price_usd, sample.volume_24h_usd, sample.market_cap_usd) == (
        datetime(2021, 2, 14, tzinfo=UTC),
        Decimal("1.67"),
        Decimal("77673000"),
        Decimal("937904172"),
    )
