"""Layout detection and cell reading: one decision per file, from the file's own content."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.csv_cells import DateOrder, DecimalMark, read_number
from domain.csv_layout import Layout, LayoutRefused, detect_layout, read_bar
from domain.csv_options import FileOptions
from domain.errors import InvalidRecord, InvalidValue
from domain.pairs import Pair, UsdQuotes, split_pair

NAMES = {"bitcoin": "BTC", "ethereum": "ETH"}
SYMBOLS = frozenset({"BTC", "ETH", "USDT", "WBTC"})


def lines(*rows: str) -> list[str]:
    return [row + "\n" for row in rows]


def bars(layout: Layout, rows: list[str]) -> list:
    import csv

    body = rows[layout.skip_lines + (1 if layout.has_header else 0) :]
    return [
        read_bar(layout, dict(zip(layout.header, cells, strict=False)))
        for cells in csv.reader(body, delimiter=layout.delimiter)
    ]


SPOT_KLINES_2025 = lines(
    "1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735689659999999,768978.89396250,1317,6.69088000,626061.63025590,0",
    "1735689660000000,93610.93000000,93652.00000000,93606.50000000,93652.00000000,6.21300000,1735689719999999,581751.38519780,831,4.39380000,411423.37436910,0",
    "1735689720000000,93652.00000000,93659.91000000,93583.27000000,93583.28000000,3.59412000,1735689779999999,336435.87289550,917,1.32190000,123740.80451090,0",
)


def test_headerless_spot_klines_in_microseconds_are_read_by_the_binance_layout() -> None:
    layout = detect_layout("BTCUSDT-1m-2025-01.csv", SPOT_KLINES_2025)
    assert (layout.has_header, layout.headerless_layout) == (False, "binance-kline")
    assert (layout.symbol.value, layout.quote.value, layout.interval.value) == ("BTC", "USDT", "1m")
    first, second, _ = bars(layout, SPOT_KLINES_2025)
    assert first.observed_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert second.observed_at == datetime(2025, 1, 1, 0, 1, tzinfo=UTC)
    assert (first.close, first.base_volume, first.quote_volume) == (
        Decimal("93610.93000000"),
        Decimal("8.21827000"),
        Decimal("768978.89396250"),
    )
    assert first.trades == 1317


def test_a_first_row_of_numbers_in_an_unknown_width_is_refused_with_the_reason() -> None:
    with pytest.raises(LayoutRefused, match=r"no header: .* 5 columns match no known headerless layout"):
        detect_layout("BTCUSDT.csv", lines("1735689600000,1,2,3,4", "1735689660000,1,2,3,4"))


def test_banner_lines_of_one_or_two_cells_are_skipped() -> None:
    header = "unix,date,symbol,open,high,low,close,Volume ETH,Volume USDT,tradecount"
    rows = [
        "1609286400000,2020-12-30 00:00:00,ETH/USDT,730.0,740.0,720.0,735.5,100.5,73000.25,50",
        "1609282800000,2020-12-29 23:00:00,ETH/USDT,729.0,731.0,728.0,730.0,10.0,7300.0,40",
    ]
    for banner in (
        ["https://www.CryptoDataDownload.com"],
        ["Created on 12-30-2020,https://www.CryptoDataDownload.com"],
    ):
        text = lines(*banner, header, *rows)
        layout = detect_layout("Binance_ETHUSDT_1h.csv", text)
        assert layout.skip_lines == 1
        assert layout.interval.value == "1h"
        first = bars(layout, text)[0]
        assert (first.symbol, first.quote, first.close) == ("ETH", "USDT", Decimal("735.5"))
        assert (first.base_volume, first.quote_volume) == (Decimal("100.5"), Decimal("73000.25"))


def test_semicolons_with_decimal_commas_are_read_as_numbers_never_as_a_rename() -> None:
    text = lines(
        "Datum;Symbol;Open;Close;Volume", "02.01.2024;BTC;1.234,50;1.300,25;12,5", "03.01.2024;BTC;1,5;2,25;3"
    )
    layout = detect_layout("export.csv", text)
    assert layout.delimiter == ";"
    assert layout.marks["Close"] is DecimalMark.COMMA
    assert layout.findings == ()
    first, second = bars(layout, text)
    assert (first.open, first.close, first.base_volume, first.quote_volume) == (
        Decimal("1234.50"),
        Decimal("1300.25"),
        Decimal("12.5"),  # a plain volume with nothing to say its currency counts base units
        None,
    )
    assert "base units, never USD" in layout.volume_evidence["Volume"]
    assert (second.open, second.close) == (Decimal("1.5"), Decimal("2.25"))


def test_a_day_first_column_is_decided_from_all_its_values() -> None:
    text = lines("date,symbol,close", "01-04-2013 23:59,BTC,100", "29-04-2013 23:59,BTC,101")
    layout = detect_layout("prices.csv", text)
    assert layout.moments.orders == {"-": DateOrder.DMY}
    first, second = bars(layout, text)
    assert first.observed_at == datetime(2013, 4, 1, 23, 59, tzinfo=UTC)
    assert second.observed_at == datetime(2013, 4, 29, 23, 59, tzinfo=UTC)


def test_a_column_that_stays_ambiguous_is_left_open_then_settled_by_the_option() -> None:
    text = lines("date,symbol,close", "01/02/2024,BTC,100", "02/02/2024,BTC,101")
    assert detect_layout("prices.csv", text).date_order_open
    layout = detect_layout("prices.csv", text, FileOptions(date_order=DateOrder.MDY))
    assert not layout.date_order_open
    assert bars(layout, text)[1].observed_at == datetime(2024, 2, 2, tzinfo=UTC)


def test_seconds_with_a_fraction_and_milliseconds_mix_in_one_column() -> None:
    text = lines("timestamp,symbol,close", "1503014400.0,BTC,4285.08", "1503100800000,BTC,4108.37")
    layout = detect_layout("prices.csv", text)
    first, second = bars(layout, text)
    assert first.observed_at == datetime(2017, 8, 18, tzinfo=UTC)
    assert second.observed_at == datetime(2017, 8, 19, tzinfo=UTC)


def test_symbol_and_quote_come_from_the_file_name_or_an_asset_name_or_the_option() -> None:
    row = lines("Date,Close", "2024-01-01,1", "2024-01-02,2")
    cases = {
        "btc-usd-max.csv": ("BTC", "USD"),
        "BTC-USD.csv": ("BTC", "USD"),
        "Binance_BTCUSDT_d.csv": ("BTC", "USDT"),
        "BTCUSDT-1m-2021-01.csv": ("BTC", "USDT"),
        "ETHBTC-1h-2021-01.csv": ("ETH", "BTC"),
        "Ethereum_2024_1_1-2024_2_1_historical_data_coinmarketcap.csv": ("ETH", "USD"),
    }
    for name, (symbol, quote) in cases.items():
        layout = detect_layout(name, row, names_to_symbols=NAMES, known_symbols=SYMBOLS)
        assert (layout.symbol.value, layout.quote.value) == (symbol, quote), name
    with pytest.raises(LayoutRefused) as refused:
        detect_layout("prices.csv", row, names_to_symbols=NAMES)
    assert str(refused.value) == (
        "no symbol: not in a column, not in the file name 'prices.csv'; set symbol for it in csv_options.toml"
    )
    layout = detect_layout("prices.csv", row, FileOptions(symbol="SOL", quote="EUR"))
    assert (layout.symbol, layout.quote.value) == (layout.symbol, "EUR")
    assert (layout.symbol.value, layout.symbol.source) == ("SOL", "option")


def test_pairs_split_against_known_quotes_and_symbols_that_end_in_one_stay_whole() -> None:
    assert split_pair("BTC/USDT") == Pair("BTC", "USDT")
    assert split_pair("btc-usd") == Pair("BTC", "USD")
    assert split_pair("BTCUSDT") == Pair("BTC", "USDT")
    assert split_pair("BTCUSD") == Pair("BTC", "USD")
    assert split_pair("ETC/BTC") == Pair("ETC", "BTC")
    assert split_pair("ETHBTC") == Pair("ETH", "BTC")
    assert split_pair("WBTC", SYMBOLS) == Pair("WBTC")
    assert split_pair("STETH") == Pair("STETH")  # too short a base to split off a crypto quote
    assert split_pair("USDT") == Pair("USDT")
    assert split_pair("BTC") == Pair("BTC")
    assert split_pair("not a symbol") is None
    assert UsdQuotes().is_usd("usdt")
    assert not UsdQuotes().is_usd("BTC")


def test_a_file_without_a_date_column_is_refused_naming_it() -> None:
    with pytest.raises(
        LayoutRefused, match=r"no time column: none of symbol, close is named as a time .*Set time_column"
    ):
        detect_layout("prices.csv", lines("symbol,close", "BTC,1", "ETH,2"))


@pytest.mark.parametrize(
    ("text", "mark", "value"),
    [
        ("1,5", None, Decimal("1.5")),
        ("1.234,50", None, Decimal("1234.50")),
        ("1,234.50", None, Decimal("1234.50")),
        ("$1,234.50", None, Decimal("1234.50")),
        ("1,500", DecimalMark.DOT, Decimal(1500)),
        ("1,500", DecimalMark.COMMA, Decimal("1.500")),
        ("1.500", DecimalMark.COMMA, Decimal(1500)),
        ("(12.5)", None, Decimal("-12.5")),
    ],
)
def test_numbers_are_read_by_their_columns_mark(text: str, mark: DecimalMark | None, value: Decimal) -> None:
    assert read_number(text, mark) == value


def test_an_ambiguous_number_is_refused_with_the_reason_never_misread() -> None:
    with pytest.raises(InvalidValue, match="ambiguous number '1,500'"):
        read_number("1,500", None)
    with pytest.raises(InvalidValue, match=r"not a number with '\.' as the decimal mark"):
        read_number("1,5", DecimalMark.DOT)
    text = lines("date,symbol,close", '2024-01-01,BTC,"1,500"', '2024-01-02,BTC,"2,500"')
    layout = detect_layout("prices.csv", text)
    with pytest.raises(InvalidRecord, match="ambiguous number"):
        bars(layout, text)


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**12), places=4))
def test_a_number_written_with_either_locale_reads_back_exactly(value: Decimal) -> None:
    english = f"{value:,.4f}"
    european = english.replace(",", " ").replace(".", ",").replace(" ", ".")
    assert read_number(english, DecimalMark.DOT) == value
    assert read_number(european, DecimalMark.COMMA) == value


def test_usd_volume_comes_only_from_usd_terms() -> None:
    from datetime import UTC, datetime

    from domain.bars import bar_record
    from domain.csv_layout import Bar
    from domain.records import RawRecord

    raw = RawRecord.of(
        source="csv:x", source_record_id="x", payload={}, fetched_at=datetime.now(UTC), run_id=1
    )
    when = datetime(2024, 1, 1, tzinfo=UTC)
    usd = UsdQuotes()
    base_only = bar_record(raw, Bar("BTC", "USDT", when, Decimal(100), base_volume=Decimal(3)), usd)
    assert base_only.volume_24h_usd == Decimal(300)
    assert base_only.extra["volume_usd_from"] == "base volume × close (USDT)"
    assert base_only.extra["base_volume"] == "3"
    in_btc = bar_record(
        raw,
        Bar("ETC", "BTC", when, Decimal("0.0002"), base_volume=Decimal(5), quote_volume=Decimal("0.001")),
        usd,
    )
    assert (in_btc.price_usd, in_btc.volume_24h_usd, in_btc.price) == (None, None, Decimal("0.0002"))
    assert (in_btc.extra["base_volume"], in_btc.extra["quote_volume"]) == ("5", "0.001")
    quoted = bar_record(
        raw, Bar("BTC", "USD", when, Decimal(100), base_volume=Decimal(3), quote_volume=Decimal(290)), usd
    )
    assert quoted.volume_24h_usd == Decimal(290)  # the quote volume, not base × close
