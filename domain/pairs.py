"""Trading pairs and quote currencies: what a price is quoted in, and when it is a USD price.

A market price is always *of* a base asset *in* a quote currency. `BTC/USDT`, `BTC-USD`,
`BTCUSDT` and `ETC/BTC` name both; `BTC` alone names only the base. A price goes into a USD
column only when its quote is USD or a USD stablecoin (a configurable list), or after a
conversion through a USD price of its quote asset: never a Bitcoin-denominated number in a USD
column.
"""

from __future__ import annotations

import functools
import re

import attrs

DEFAULT_USD_QUOTES = ("USD", "USDT", "USDC", "BUSD", "DAI", "TUSD", "FDUSD", "USDP")

# quotes a pair can end in, longest first so `BTCUSDT` is BTC/USDT and not BTCU/SDT... or BTC/USD+T
KNOWN_QUOTES = tuple(
    sorted(
        {
            *DEFAULT_USD_QUOTES,
            "UST", "PAX", "USDD", "EUR", "EURT", "EURC", "GBP", "JPY", "KRW", "TRY", "BRL", "AUD", "CAD",
            "CHF", "RUB", "UAH", "NGN", "ZAR", "IDR", "BIDR", "MXN", "PLN", "ARS", "INR",
            "BTC", "XBT", "ETH", "BNB", "TRX", "XRP", "DOGE", "SOL",
        },
        key=lambda quote: (-len(quote), quote),
    )
)  # fmt: skip
# quotes that are assets themselves: a symbol such as `WBTC` or `STETH` merely ends in one, so a
# run-together pair is split on them only when what is left is a plausible symbol of 3+ letters
_CRYPTO_QUOTES = frozenset({"BTC", "XBT", "ETH", "BNB", "TRX", "XRP", "DOGE", "SOL"})
_ALIASES = {"XBT": "BTC"}

_SEPARATED = re.compile(r"^\s*([A-Za-z0-9.]{1,20})\s*[/\-_:]\s*([A-Za-z0-9.]{2,10})\s*$")
_SYMBOL = re.compile(r"^[A-Za-z0-9]{1,20}$")


@attrs.frozen
class Pair:
    """A base asset and, when known, the currency its prices are quoted in (both upper case)."""

    base: str
    quote: str | None = None

    def __str__(self) -> str:
        return f"{self.base}/{self.quote}" if self.quote else self.base


@functools.lru_cache(maxsize=8192)
def split_pair(text: str, known_symbols: frozenset[str] = frozenset()) -> Pair | None:
    """`BTC/USDT`, `BTC-USD`, `btc_usd`, `BTCUSDT`, `ETHBTC` as base and quote; `BTC` as a base
    alone; None for text that is not a symbol. A run-together text that is itself a known
    symbol (`WBTC`, `USDT`) stays whole."""
    separated = _SEPARATED.match(text)
    if separated:
        base, quote = separated.group(1).upper(), separated.group(2).upper()
        if quote in KNOWN_QUOTES:
            return Pair(_ALIASES.get(base, base), _ALIASES.get(quote, quote))
        return None
    word = text.strip().upper()
    if not _SYMBOL.match(word):
        return None
    if word in known_symbols or word in KNOWN_QUOTES:
        return Pair(_ALIASES.get(word, word))
    splits = []
    for quote in KNOWN_QUOTES:
        base = word[: -len(quote)]
        if not word.endswith(quote) or not base.isalnum():
            continue
        shortest = 3 if quote in _CRYPTO_QUOTES else 2
        if len(base) >= shortest and not base.isdigit():
            splits.append(Pair(_ALIASES.get(base, base), _ALIASES.get(quote, quote)))
    # a split whose base is a known asset (`XBT`+`USD`, not `XB`+`TUSD`), else the longest quote
    known = next(
        (pair for pair in splits if pair.base in known_symbols or pair.base in _ALIASES.values()), None
    )
    if known is not None:
        return known
    return splits[0] if splits else Pair(word)


@attrs.frozen
class UsdQuotes:
    """Which quote currencies count as US dollars (`USD_QUOTES`)."""

    symbols: frozenset[str] = frozenset(DEFAULT_USD_QUOTES)

    @classmethod
    def of(cls, symbols: tuple[str, ...] | list[str]) -> UsdQuotes:
        return cls(frozenset(symbol.strip().upper() for symbol in symbols if symbol.strip()))

    def is_usd(self, quote: str | None) -> bool:
        return quote is not None and quote.upper() in self.symbols
