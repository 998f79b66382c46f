"""A bar of a price file as a market record: which numbers may be called USD, and how.

- `price_usd` (and the bar's open, high, low in USD, and the market cap) only when the quote is
  USD or a USD stablecoin, or from the file's own USD price column beside a price in another
  currency (`price_eur;price_usd`); a price in another asset (ETC/BTC) gets USD values only by
  `convert`, through a USD price of the quote asset observed within the same bar.
- `volume_24h_usd` only from a volume in USD terms: a USD volume column, the quote volume of a
  USD-quoted pair, or base volume × close when only the base volume is given; `extra` says
  which (`volume_usd_from`) unless it is simply the quote volume. The base volume, and a quote
  volume that is not the USD volume itself, are kept there as given.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from domain.csv_layout import Bar, Layout
from domain.pairs import UsdQuotes
from domain.records import QuarantinedRecord, RawRecord, SourceType, UnifiedRecord, market_record


def bar_record(raw: RawRecord, bar: Bar, usd: UsdQuotes, price_field: str = "close") -> UnifiedRecord:
    """The market record of one bar, with the USD rules above."""
    in_usd = usd.is_usd(bar.quote)
    extra: dict[str, Any] = dict(bar.extra)
    for name, value in (("open", bar.open), ("high", bar.high), ("low", bar.low)):
        if value is not None:
            extra[name] = str(value)
    volume_usd, volume_from = _usd_volume(bar, in_usd)
    if bar.base_volume is not None:
        extra["base_volume"] = str(bar.base_volume)
    if bar.quote_volume is not None and volume_from != QUOTE_VOLUME:
        extra["quote_volume"] = str(bar.quote_volume)  # not already the USD volume itself
    if bar.trades is not None:
        extra["trades"] = bar.trades
    if bar.market_cap is not None and not in_usd:
        extra["market_cap"] = str(bar.market_cap)
    if volume_from not in (None, QUOTE_VOLUME):
        extra["volume_usd_from"] = volume_from
    price_usd = bar.close if in_usd else bar.usd_close
    if not in_usd and bar.usd_close is not None:
        extra["price_usd_from"] = "the file's own USD price column"
    return market_record(
        raw,
        SourceType.CSV,
        price_field=price_field,
        symbol=bar.symbol,
        asset_name=bar.asset_name,
        price_usd=price_usd,
        observed_at=bar.observed_at,
        market_cap_usd=bar.market_cap if in_usd else None,
        volume_24h_usd=volume_usd,
        extra=extra,
        quote_currency=bar.quote or "USD",
        price=bar.close,
        ohlc_usd=(bar.open, bar.high, bar.low) if in_usd else (None, None, None),
        bar_seconds=bar.interval_seconds,
    )


QUOTE_VOLUME = "quote volume"  # the common case, said by the record's quote_currency itself


def _usd_volume(bar: Bar, in_usd: bool) -> tuple[Decimal | None, str | None]:
    """The bar's volume in USD and where it came from (`extra.volume_usd_from` when it is not
    simply the quote volume of a USD-quoted pair)."""
    if bar.usd_volume is not None:
        return bar.usd_volume, "usd volume column"
    if in_usd and bar.quote_volume is not None:
        return bar.quote_volume, QUOTE_VOLUME
    if in_usd and bar.base_volume is not None:
        return bar.base_volume * bar.close, f"base volume × close ({bar.quote})"
    return None, None


@attrs.frozen
class UsdRate:
    """A USD price of a quote asset within a bar: the median of the prices the sources observed
    there (never one outlier), and which sources (`source`: their names, comma-separated)."""

    asset: str
    price_usd: Decimal
    observed_at: datetime
    source: str


def needs_conversion(record: UnifiedRecord, usd: UsdQuotes) -> bool:
    return record.price is not None and record.price_usd is None and not usd.is_usd(record.quote_currency)


def convert(record: UnifiedRecord, rate: UsdRate) -> UnifiedRecord:
    """`record`'s USD values through `rate`, and a note in `extra` saying so."""

    def times(value: Decimal | None) -> Decimal | None:
        return None if value is None else value * rate.price_usd

    extra = dict(record.extra)
    extra["price_usd_converted"] = {
        "via": rate.asset,
        "rate": str(rate.price_usd),  # the median of the sources' prices within the bar
        "observed_at": rate.observed_at.isoformat(),
        "source": rate.source,  # the sources it is the median of, comma-separated
        "sources": rate.source.split(","),
    }
    volume = record.volume_24h_usd
    quote_volume = extra.get("quote_volume")
    if volume is None and quote_volume is not None:
        volume = Decimal(quote_volume) * rate.price_usd
        extra["volume_usd_from"] = f"quote volume ({record.quote_currency}) converted via {rate.asset}"

    def extra_number(name: str) -> Decimal | None:
        text = extra.get(name)
        return None if text is None else Decimal(text)

    return attrs.evolve(
        record,
        price_usd=times(record.price),
        open_usd=times(extra_number("open")),
        high_usd=times(extra_number("high")),
        low_usd=times(extra_number("low")),
        market_cap_usd=times(extra_number("market_cap")),
        volume_24h_usd=volume,
        extra=extra,
    )


@attrs.frozen
class FileInspection:
    """What `kaspero csv inspect` shows of one file: its layout and first rows as they would be
    stored, or the reason it is refused."""

    path: str
    source: str
    layout: Layout | None
    refusal: str | None
    records: tuple[UnifiedRecord, ...] = ()
    quarantined: tuple[QuarantinedRecord, ...] = ()
