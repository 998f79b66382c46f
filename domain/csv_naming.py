"""How a price file names things: its columns (the aliases exports use), the volume columns'
currencies, and the symbol and quote currency its name or its columns give."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from domain.csv_options import FileOptions, Origin
from domain.pairs import KNOWN_QUOTES, Pair, split_pair

# header names exports really use, compared by `header_key`; the first of these a file has wins
TIME_COLUMNS = (
    "open_time", "opentime", "timeopen", "time_open", "unix", "unix_timestamp", "snapped_at",
    "date", "datetime", "date_utc", "timestamp", "time", "day", "period_start", "time_period_start",
)  # fmt: skip
ALIASES: Mapping[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker", "coin", "asset_symbol", "code", "pair", "ticker_symbol", "market"),
    "asset_name": ("name", "asset", "asset_name", "coin_name", "currency_name"),
    "open": ("open", "open_usd", "opening_price", "open_price"),
    "high": ("high", "high_usd", "high_price"),
    "low": ("low", "low_usd", "low_price"),
    "close": ("close", "close_usd", "price", "price_usd", "closing_price", "close_price", "last"),
    "volume": ("volume", "vol", "volume_24h", "total_volume"),
    "quote_volume": ("quote_volume", "quote_asset_volume", "volume_quote", "quote_av"),
    "usd_volume": ("volume_usd", "volume_24h_usd", "usd_volume"),
    "market_cap": ("market_cap", "marketcap", "market_cap_usd", "mkt_cap", "mcap"),
    "trades": ("tradecount", "trade_count", "count", "trades", "number_of_trades", "num_trades"),
}
BY_ALIAS = {alias: field for field, aliases in ALIASES.items() for alias in aliases}
_USD_NAMED = re.compile(r"(^|_)usd($|_)")
_VOLUME_IN = re.compile(r"^volume_([a-z0-9]{2,10})$")
# CoinMarketCap exports put the numeric id of the quote currency in `name`
CMC_QUOTE_IDS = {"2781": "USD", "1": "BTC", "1027": "ETH", "825": "USDT", "3408": "USDC", "2790": "EUR"}

FILE_NAME_NOISE = frozenset(
    {
        "binance", "binanceus", "coinbase", "kraken", "bitstamp", "gemini", "bitfinex", "kucoin", "okx",
        "okex", "huobi", "bybit", "gateio", "poloniex", "bittrex", "ftx", "max", "all", "daily", "hourly",
        "minute", "weekly", "monthly", "d", "h", "m", "w", "1d", "1h", "1m", "5m", "15m", "30m", "4h",
        "historical", "history", "data", "prices", "price", "export", "klines", "kline", "ohlc", "ohlcv",
        "usd_max", "coinmarketcap", "coingecko", "yahoo", "spot", "futures", "um", "cm", "candles",
    }
)  # fmt: skip


def header_key(name: str) -> str:
    """`"Close (USD)"` → `close_usd`; `"Volume BTC"` → `volume_btc`; `timeOpen` → `timeopen`."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def unique_header(cells: Sequence[str]) -> list[str]:
    """Strip names and suffix repeats (`price`, `price_2`) so no column overwrites another."""
    seen: dict[str, int] = {}
    names = []
    for index, cell in enumerate(cells):
        name = cell.strip().lstrip("\ufeff").strip() or f"column_{index + 1}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def one_base(values: Sequence[str], known_symbols: frozenset[str]) -> str | None:
    """The base asset every row's symbol names, when they all name the same one."""
    bases = {pair.base for value in values if value.strip() and (pair := split_pair(value, known_symbols))}
    return bases.pop() if len(bases) == 1 else None


def volume_terms(
    header: Sequence[str],
    fields: Mapping[str, str],
    base_symbol: str | None,
    quote: Origin,
    headerless: str | None,
) -> dict[str, str]:
    """Which volume column is in base units, which in the quote currency, which in USD."""
    terms: dict[str, str] = {}
    base = (base_symbol or "").upper()
    quoted = (quote.value or "").upper()
    for column in header:
        named = _VOLUME_IN.match(header_key(column))
        if named is None or header_key(column) in ALIASES["usd_volume"]:
            continue
        currency = named.group(1).upper()
        if base and currency == base:
            terms[column] = "base"
        elif quoted and currency == quoted:
            terms[column] = "quote"
    if "usd_volume" in fields:
        terms[fields["usd_volume"]] = "usd"
    if "quote_volume" in fields:
        terms[fields["quote_volume"]] = "quote"
    if "volume" in fields:
        # a plain `volume` beside a quote volume (klines) counts base units; alone it is the
        # exporters' volume in the quote currency (CoinGecko, Yahoo, CoinMarketCap)
        beside_quote = "quote" in terms.values() or headerless is not None
        terms.setdefault(fields["volume"], "base" if beside_quote else "quote")
    return terms


def option_quote(options: FileOptions) -> Origin | None:
    return Origin(options.quote.upper(), "option") if options.quote else None


def quote_from_columns(header: Sequence[str], columns: Mapping[str, list[str]], base: str | None) -> Origin:
    for column in header:
        named = _VOLUME_IN.match(header_key(column))
        if named and named.group(1).upper() != (base or "") and split_pair(named.group(1)) is not None:
            currency = named.group(1).upper()
            if currency in KNOWN_QUOTES:
                return Origin(currency, f"column {column!r}")
    for column in header:
        if header_key(column) == "name" and all_numeric(columns[column]):
            ids = {value.strip() for value in columns[column] if value.strip()}
            if len(ids) == 1 and (known := CMC_QUOTE_IDS.get(ids.pop())):
                return Origin(known, f"CoinMarketCap currency id in column {column!r}")
    for column in header:
        if _USD_NAMED.search(header_key(column)):
            return Origin("USD", f"column name {column!r}")
    return Origin(
        "USD", "assumed: no quote in the rows, the file name or the options (set quote in csv_options.toml)"
    )


def pair_from_file_name(
    file_name: str, names_to_symbols: Mapping[str, str], known_symbols: frozenset[str] = frozenset()
) -> tuple[Pair, str] | None:
    """The pair or symbol a file's name gives: `btc-usd-max.csv`, `BTC-USD.csv`,
    `Binance_BTCUSDT_d.csv`, `BTCUSDT-1m-2021-01.csv`; else an asset name the cross-reference
    knows (`Bitcoin_…_coinmarketcap.csv` → BTC)."""
    stem = re.sub(r"\.(csv|txt|tsv)$", "", file_name.rsplit("/", 1)[-1], flags=re.I)
    tokens = [token for token in re.split(r"[-_ .]+", stem) if token]
    words = [
        t for t in tokens if t.lower() not in FILE_NAME_NOISE and not t.isdigit() and not _is_interval(t)
    ]

    for first, second in itertools.pairwise(tokens):
        if second.upper() in KNOWN_QUOTES and _symbol_like(first) and first.lower() not in FILE_NAME_NOISE:
            return Pair(first.upper(), second.upper()), f"file name ({first}-{second})"
    for word in words:
        pair = split_pair(word, known_symbols)
        if pair is not None and pair.quote and _symbol_like(pair.base):
            return pair, f"file name ({word})"
    for word in words:
        symbol = names_to_symbols.get(word.lower())
        if symbol:
            return Pair(symbol), f"asset name {word!r} in the file name, through the cross-reference"
    for word in words:
        if word.upper() in known_symbols:
            return Pair(word.upper()), f"file name ({word})"
    return None


def _symbol_like(text: str) -> bool:
    return 2 <= len(text) <= 10 and text.isalnum() and not text.isdigit()


def _is_interval(text: str) -> bool:
    return re.fullmatch(r"\d+[smhdwM]", text) is not None


def all_numeric(values: Sequence[str]) -> bool:
    present = [value for value in values if value.strip()]
    return bool(present) and all(value.strip().isdigit() for value in present)
