"""Evidence, not guesses: each decision about a price file rests on something in the file (or
its name), and where nothing settles one the file is refused naming the setting that does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from domain.csv_layout import LayoutRefused, detect_layout
from domain.csv_naming import pair_from_file_name
from domain.csv_options import FileOptions
from tests.unit.test_csv_layout import bars, lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
NAMES = {
    "bitcoin": "BTC",
    "ethereum": "ETH",
    "ethereum classic": "ETC",
    "ethereum-classic": "ETC",
    "ripple": "XRP",
}
KNOWN = frozenset({"BTC", "ETH", "ETC", "XRP", "USDT"})
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def real(name: str) -> list[str]:
    return (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)


def detect(name: str, text: list[str], options: FileOptions | None = None):  # type: ignore[no-untyped-def]
    return detect_layout(name, text, options, NAMES, KNOWN, now=NOW)


def test_a_multi_coin_snapshot_without_a_date_column_is_refused_not_dated_by_its_market_caps() -> None:
    snapshot = real("top_crypto.csv")
    with pytest.raises(LayoutRefused, match="match no known headerless layout"):
        detect("top_crypto.csv", snapshot)
    # the columns as the file's own project documents them: still no time in it
    header = "Number,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24hr),1h,24h,7d\n"
    with pytest.raises(LayoutRefused, match=r"no time column: .*Set time_column"):
        detect("top_crypto.csv", [header, *snapshot])


def test_unix_time_needs_a_time_name_and_this_eras_values() -> None:
    named_but_caps = lines("timestamp,symbol,close", "150702985544,BTC,1", "87546972836,ETH,2")
    with pytest.raises(LayoutRefused, match=r"not Unix times between 2009-01-03 and tomorrow"):
        detect("caps.csv", named_but_caps)
    ok = detect("prices.csv", lines("timestamp,symbol,close", "1500000000,BTC,1", "1500086400,BTC,2"))
    assert ok.time_evidence == "named 'timestamp'"


def test_an_asset_name_in_a_file_name_matches_whole_and_longest_first() -> None:
    etc = detect("ethereum_classic_price.csv", real("ethereum_classic_price.csv"))
    assert etc.symbol.value == "ETC"  # never ETH, whose name is a part of it
    assert "'ethereum classic'" in etc.symbol.source
    assert pair_from_file_name("ethereum_price.csv", NAMES).pair.base == "ETH"
    assert pair_from_file_name("ripple_price.csv", NAMES).pair.base == "XRP"  # a CoinGecko slug


@pytest.mark.parametrize(
    ("name", "base", "quote", "venue"),
    [
        ("BITSTAMP_BTCUSD, 1D.csv", "BTC", "USD", "bitstamp"),
        ("investing_BTC_GBP_Historical Data.csv", "BTC", "GBP", "investing"),
        ("XBTUSD_1440.csv", "BTC", "USD", None),
        ("Binance_ETHUSDT_1h.csv", "ETH", "USDT", "binance"),
        ("USDT_BTC.csv", "BTC", "USDT", None),  # a currency is the quote wherever it stands
        ("bitstampUSD.csv", "", "USD", "bitstamp"),  # the venue is no coin: the name gives a quote alone
    ],
)
def test_venues_prefixes_and_trailing_words_never_hide_or_become_the_pair(
    name: str, base: str, quote: str, venue: str | None
) -> None:
    found = pair_from_file_name(name, NAMES, KNOWN)
    assert (found.pair.base, found.pair.quote, found.venue) == (base, quote, venue)


def test_a_venue_alone_is_no_symbol_but_a_volume_counted_in_a_coin_is() -> None:
    with pytest.raises(LayoutRefused, match=r"no symbol: .*bitstamp is an exchange, not a coin.*set symbol"):
        detect(
            "bitstampUSD.csv",
            lines("Timestamp,Open,High,Low,Close,Vol", "1325376000,4.39,4.39,4.39,4.39,0.45"),
        )
    kaggle = lines(
        "Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price",
        "1325376000,4.39,4.39,4.39,4.39,0.45558087,2.0000000193,4.39",
        "1325462400,4.39,4.39,4.39,4.39,48,210.72,4.39",
    )
    layout = detect("bitstampUSD.csv", kaggle)
    assert (layout.symbol.value, layout.quote.value) == ("BTC", "USD")
    assert layout.symbol.source == "column 'Volume_(BTC)' counts units of BTC"
    first = bars(layout, kaggle)[0]
    assert (first.base_volume, first.quote_volume) == (Decimal("0.45558087"), Decimal("2.0000000193"))


def test_a_pair_of_two_crypto_assets_in_a_name_is_refused_unless_the_options_settle_it() -> None:
    poloniex = real("BTC_ETH.csv")
    with pytest.raises(LayoutRefused, match=r"pairs two crypto assets \(BTC and ETH\).*set symbol and quote"):
        detect("BTC_ETH.csv", poloniex)
    layout = detect("BTC_ETH.csv", poloniex, FileOptions(symbol="ETH", quote="BTC"))
    first = bars(layout, poloniex)[0]
    assert (first.symbol, first.quote, first.close) == ("ETH", "BTC", Decimal("0.08636392"))


def test_a_price_column_naming_its_currency_is_in_it_and_the_usd_one_is_kept_beside() -> None:
    text = lines(
        "date_iso;time_berlin;symbol;price_eur;price_usd",
        "2021-01-04;10:00;BTC;26531.11;32561.50",
        "2021-01-05;10:00;BTC;27212.75;33404.12",
    )
    layout = detect("bitcoin_eur.csv", text)
    assert layout.quote.value == "EUR"
    first = bars(layout, text)[0]
    assert (first.close, first.usd_close, first.quote) == (Decimal("26531.11"), Decimal("32561.50"), "EUR")
    alone = detect("bitcoin_usd.csv", lines("date,symbol,price_eur", "2021-01-04,BTC,26531.11"))
    assert alone.quote.value == "EUR"  # the column says EUR whatever the file name says


def test_volume_units_rest_on_evidence() -> None:
    etc = detect("ethereum_classic_price.csv", real("ethereum_classic_price.csv"))
    assert etc.volume_terms["Volume"] == "quote"  # beside market caps, only the quote currency fits
    assert etc.volume_evidence["Volume"].startswith("beside market caps (an aggregator's export)")
    kraken = detect("XBTUSD_1440.csv", real("XBTUSD_1440.csv"))
    assert kraken.headerless_layout == "kraken-ohlcvt"
    assert kraken.volume_terms["volume"] == "base"
    cryptocompare = lines(
        "time,high,low,open,close,volumefrom,volumeto", "1609459200,29600,28803,28951,29374,51162,1483420000"
    )
    layout = detect("BTC-USD-histoday.csv", cryptocompare)
    only = bars(layout, cryptocompare)[0]
    assert (only.base_volume, only.quote_volume) == (Decimal(51162), Decimal(1483420000))
    told = detect(
        "prices.csv", lines("date,symbol,close,volume", "2024-01-01,BTC,1,5"), FileOptions(volume="quote")
    )
    assert told.volume_terms["volume"] == "quote"
    assert told.volume_evidence["volume"] == "option volume"


def test_investing_com_exports_are_read() -> None:
    text = lines(
        '"Date","Price","Open","High","Low","Vol.","Change %"',
        '"Jan 14, 2020","8,746.6","8,110.5","8,868.9","8,104.4","1.38M","7.84%"',
        '"Jan 13, 2020","8,110.5","8,184.1","8,195.0","8,080.9","0.22K","-0.90%"',
        '"Jan 12, 2020","8,184.1","8,034.4","8,201.2","8,000.1","-","1.86%"',
    )
    layout = detect("investing_BTC_GBP_Historical Data.csv", text)
    assert (layout.symbol.value, layout.quote.value) == ("BTC", "GBP")
    first, second, third = bars(layout, text)
    assert first.observed_at == datetime(2020, 1, 14, tzinfo=UTC)
    assert (first.close, first.open, first.base_volume) == (
        Decimal("8746.6"),
        Decimal("8110.5"),
        Decimal("1380000"),
    )
    assert second.base_volume == Decimal("220")
    assert third.base_volume is None  # `-`: no volume that day, not a failed row


def test_several_coins_by_name_are_mapped_row_by_row_and_an_unknown_name_is_the_rows_reason() -> None:
    from domain.csv_layout import read_bar
    from domain.errors import InvalidRecord

    text = lines(
        "Currency,Date,Open,High,Low,Close",
        "bitcoin,2017-09-01,4701,4892,4678,4892",
        "ripple,2017-09-01,0.25,0.26,0.24,0.25",
        "ardor,2017-09-01,0.2,0.21,0.19,0.2",
    )
    layout = detect("coin_data.csv", text, None)
    assert layout.symbol.value is None
    import csv

    rows = [dict(zip(layout.header, cells, strict=False)) for cells in csv.reader(text[1:])]
    assert [read_bar(layout, row).symbol for row in rows[:2]] == ["BTC", "XRP"]
    with pytest.raises(InvalidRecord, match=r"Currency: 'ardor' is no asset the cross-reference knows"):
        read_bar(layout, rows[2])


def test_a_date_value_series_loads_when_its_name_names_the_coin_and_is_refused_when_nothing_does() -> None:
    series = lines("Date,Value", "2021-01-01,29374.15", "2021-01-02,32127.27")
    layout = detect("bitcoin_price_series.csv", series)
    assert (layout.symbol.value, layout.fields["close"]) == ("BTC", "Value")
    assert [bar.close for bar in bars(layout, series)] == [Decimal("29374.15"), Decimal("32127.27")]
    with pytest.raises(LayoutRefused, match=r"no symbol: .*set symbol"):
        detect("series.csv", series)
