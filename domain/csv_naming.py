"""How a price file names things: its columns (the aliases exports use), the volume columns'
currencies, and the symbol and quote currency its name or its columns give."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

import attrs

from domain.csv_options import FileOptions, Origin
from domain.pairs import KNOWN_QUOTES, Pair, split_pair

# header names exports really use, compared by `header_key`; the first of these a file has wins
TIME_COLUMNS = (
    "open_time", "opentime", "timeopen", "time_open", "unix", "unix_timestamp", "snapped_at",
    "date", "datetime", "date_utc", "timestamp", "time", "day", "period_start", "time_period_start",
)  # fmt: skip
ALIASES: Mapping[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker", "coin", "asset_symbol", "code", "pair", "ticker_symbol", "market"),
    "asset_name": ("name", "asset", "asset_name", "coin_name", "currency_name", "currency"),
    "open": ("open", "open_usd", "opening_price", "open_price"),
    "high": ("high", "high_usd", "high_price"),
    "low": ("low", "low_usd", "low_price"),
    "close": ("close", "close_usd", "price", "price_usd", "closing_price", "close_price", "last", "value"),
    "volume": ("volume", "vol", "volume_24h", "total_volume"),
    # CryptoCompare's `volumeto` and Bitstamp's `Volume (Currency)` count the quote currency
    "quote_volume": (
        "quote_volume",
        "quote_asset_volume",
        "volume_quote",
        "quote_av",
        "volumeto",
        "volume_currency",
    ),
    "base_volume": ("volumefrom", "base_volume", "volume_base"),
    "usd_volume": ("volume_usd", "volume_24h_usd", "usd_volume"),
    "market_cap": ("market_cap", "marketcap", "market_cap_usd", "mkt_cap", "mcap"),
    "trades": ("tradecount", "trade_count", "count", "trades", "number_of_trades", "num_trades"),
}
BY_ALIAS = {alias: field for field, aliases in ALIASES.items() for alias in aliases}
_USD_NAMED = re.compile(r"(^|_)usd($|_)")
_VOLUME_IN = re.compile(r"^volume_([a-z0-9]{2,10})$")
# CoinMarketCap exports put the numeric id of the quote currency in `name`
CMC_QUOTE_IDS = {"2781": "USD", "1": "BTC", "1027": "ETH", "825": "USDT", "3408": "USDC", "2790": "EUR"}

# exchanges and data vendors: a venue a file comes from, never the coin it prices
VENUES = frozenset(
    {
        "binance", "binanceus", "coinbase", "coinbasepro", "gdax", "kraken", "bitstamp", "gemini", "bitfinex",
        "kucoin", "okx", "okex", "huobi", "htx", "bybit", "gateio", "gate", "poloniex", "bittrex", "ftx",
        "bitmex", "deribit", "bithumb", "upbit", "bitflyer", "mexc", "bitget", "cryptocom", "hitbtc",
        "investing", "tradingview", "cryptocompare", "cryptodatadownload", "coinmarketcap", "coingecko",
        "yahoo", "kaggle", "coinapi", "messari", "glassnode", "nasdaq",
    }
)  # fmt: skip
# fiat money and stablecoins: in a pair of two names, such a currency is the quote wherever it stands
CURRENCIES = frozenset(
    {
        "USD", "EUR", "GBP", "JPY", "KRW", "TRY", "BRL", "AUD", "CAD", "CHF", "RUB", "UAH", "NGN", "ZAR",
        "IDR", "BIDR", "MXN", "PLN", "ARS", "INR", "CNY", "HKD", "SGD", "USDT", "USDC", "BUSD", "DAI",
        "TUSD", "FDUSD", "USDP", "UST", "PAX", "USDD", "EURT", "EURC",
    }
)  # fmt: skip
FILE_NAME_NOISE = VENUES | frozenset(
    {
        "max", "all", "daily", "hourly",
        "minute", "weekly", "monthly", "d", "h", "m", "w", "1d", "1h", "1m", "5m", "15m", "30m", "4h",
        "historical", "history", "data", "prices", "price", "export", "klines", "kline", "ohlc", "ohlcv",
        "usd_max", "spot", "futures", "um", "cm", "candles", "com", "csv", "chart", "ohlcvt", "histo",
        "histoday", "histohour", "histominute", "value", "values", "series",
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
    if "base_volume" in fields:
        terms[fields["base_volume"]] = "base"
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


@attrs.frozen
class FromName:
    """What a file's name says of its pair, and how (the evidence `inspect` shows)."""

    pair: Pair
    how: str
    order_open: bool = False  # two crypto assets side by side: which is priced in which is not shown
    venue: str | None = None  # an exchange or vendor named beside the pair (kept, never a coin)


def pair_from_file_name(
    file_name: str, names_to_symbols: Mapping[str, str], known_symbols: frozenset[str] = frozenset()
) -> FromName | None:
    """The pair or symbol a file's name gives, from a whole match only: a pair of two names
    (`btc-usd-max.csv`, `investing_BTC_GBP_Historical Data.csv`), a run-together exchange symbol
    (`Binance_BTCUSDT_d.csv`, `BITSTAMP_BTCUSD, 1D.csv`, `XBTUSD_1440.csv`), an asset's whole name,
    longest first (`ethereum_classic_price.csv` is ETC, never ETH), or a known symbol. Venues
    (`bitstamp`, `kraken`, …) are venues, never coins: `bitstampUSD.csv` names a quote alone."""
    stem = re.sub(r"\.(csv|txt|tsv)$", "", file_name.rsplit("/", 1)[-1], flags=re.I)
    tokens = [token for token in re.split(r"[-_ .,()\[\]]+", stem) if token]
    stripped = [_without_venue(token) for token in tokens]
    venue = next((found for _, found in stripped if found), None)
    tokens = [rest for rest, _ in stripped if rest]
    words = [
        t for t in tokens if t.lower() not in FILE_NAME_NOISE and not t.isdigit() and not _is_interval(t)
    ]
    for first, second in itertools.pairwise(tokens):
        a, b = first.upper(), second.upper()
        if (
            not (_symbol_like(first) and _symbol_like(second))
            or {first.lower(), second.lower()} & FILE_NAME_NOISE
        ):
            continue
        if b in CURRENCIES and a not in CURRENCIES:
            return FromName(
                Pair(_alias(a), b), f"file name ({first}-{second}: {b} is a currency)", venue=venue
            )
        if a in CURRENCIES and b not in CURRENCIES:
            return FromName(
                Pair(_alias(b), a), f"file name ({first}-{second}: {a} is a currency, the quote)", venue=venue
            )
        if b in KNOWN_QUOTES and a not in CURRENCIES:
            return FromName(
                Pair(_alias(a), _alias(b)), f"file name ({first}-{second})", order_open=True, venue=venue
            )
    for word in words:
        pair = split_pair(word, known_symbols)
        if pair is not None and pair.quote and _symbol_like(pair.base):
            return FromName(pair, f"file name ({word}, an exchange symbol: base then quote)", venue=venue)
    named = _asset_name(words, names_to_symbols)
    if named is not None:
        symbol, name = named
        return FromName(
            Pair(symbol), f"asset name {name!r} in the file name, through the cross-reference", venue=venue
        )
    for word in words:
        if word.upper() in known_symbols or _alias(word.upper()) != word.upper():
            return FromName(Pair(_alias(word.upper())), f"file name ({word})", venue=venue)
    quote = next((word.upper() for word in words if word.upper() in CURRENCIES), None)
    if quote is not None:
        return FromName(Pair("", quote), f"file name ({quote})", venue=venue)
    return None


def _alias(symbol: str) -> str:
    return {"XBT": "BTC"}.get(symbol, symbol)


_VENUES_LONGEST_FIRST = tuple(sorted(VENUES, key=len, reverse=True))


def _without_venue(token: str) -> tuple[str, str | None]:
    """`bitstampUSD` → (`USD`, bitstamp); `BITSTAMP` → (``, bitstamp): a venue's name, alone or
    run into a pair, is where the prices come from, not the coin."""
    lower = token.lower()
    for venue in _VENUES_LONGEST_FIRST:
        if lower.startswith(venue) and (len(lower) == len(venue) or token[len(venue) :].isupper()):
            return token[len(venue) :], venue
    return token, None


def _asset_name(words: Sequence[str], names_to_symbols: Mapping[str, str]) -> tuple[str, str] | None:
    """The longest run of words that is an asset's whole name (`ethereum classic` before
    `ethereum`), and its symbol."""
    lowered = [word.lower() for word in words]
    for length in range(min(4, len(lowered)), 0, -1):
        for start in range(len(lowered) - length + 1):
            name = " ".join(lowered[start : start + length])
            symbol = names_to_symbols.get(name) or names_to_symbols.get(name.replace(" ", "-"))
            if symbol:
                return symbol, name
    return None


def _symbol_like(text: str) -> bool:
    return 2 <= len(text) <= 10 and text.isalnum() and not text.isdigit()


def _is_interval(text: str) -> bool:
    return re.fullmatch(r"\d+[smhdwM]", text) is not None


def all_numeric(values: Sequence[str]) -> bool:
    present = [value for value in values if value.strip()]
    return bool(present) and all(value.strip().isdigit() for value in present)
