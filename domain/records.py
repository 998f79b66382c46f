"""Records as they travel: the raw payload a source sent, and the unified row made of it."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from domain.checksum import canonical_json, json_checksum
from domain.cleaning import replace_nul
from domain.errors import InvalidRecord


class SourceType(enum.StrEnum):
    API = "api"
    CSV = "csv"
    RSS = "rss"


class RecordKind(enum.StrEnum):
    MARKET = "market"
    ARTICLE = "article"


@attrs.frozen
class Source:
    """A named origin of records: `coinpaprika`, `coingecko`, `csv:<stem>`, `rss:<host>`."""

    name: str
    source_type: SourceType


def is_snapshot_source(name: str) -> bool:
    """Whether a source is a provider's snapshot of current prices: such a source is named by its
    kind alone (`coingecko`), where a file or feed is `<kind>:<its name>` (`csv:prices`)."""
    return ":" not in name


@attrs.frozen
class RawRecord:
    """One element exactly as a source sent it, with the checksum that identifies its content."""

    source: str
    source_record_id: str
    payload: dict[str, Any]
    checksum: str
    fetched_at: datetime
    run_id: int
    # the canonical JSON the checksum was taken of, kept so a loader need not serialize again
    payload_json: str | None = attrs.field(default=None, eq=False, repr=False)
    # a line of a file as it was read (without its line break), and where in the file it starts
    # (bytes): what is kept of a CSV row, rather than its payload re-encoded
    line: str | None = attrs.field(default=None, eq=False, repr=False)
    position: int | None = attrs.field(default=None, eq=False)
    # the id the store already keeps this payload under (a quarantined line read again): not
    # stored twice, its record points there
    stored_as: int | None = attrs.field(default=None, eq=False)

    @classmethod
    def of(
        cls,
        *,
        source: str,
        source_record_id: str,
        payload: dict[str, Any],
        fetched_at: datetime,
        run_id: int,
        line: str | None = None,
        position: int | None = None,
    ) -> RawRecord:
        text = canonical_json(payload)
        return cls(
            source=source,
            source_record_id=source_record_id,
            payload=payload,
            checksum=json_checksum(text),
            fetched_at=fetched_at,
            run_id=run_id,
            payload_json=text,
            line=line,
            position=position,
        )


def without_nul(raw: RawRecord) -> RawRecord | None:
    """`raw` rebuilt with every U+0000 replaced by U+FFFD (`replace_nul`), or None when it holds
    none: such a record cannot be stored as received, so readers quarantine the rebuilt one
    with `NUL_REASON`. Canonical JSON writes U+0000 as an escape, so one text search finds it."""
    if (
        "\\u0000" not in (raw.payload_json or canonical_json(raw.payload))
        and "\x00" not in raw.source_record_id
        and "\x00" not in (raw.line or "")
    ):
        return None
    rebuilt = RawRecord.of(
        source=raw.source,
        source_record_id=replace_nul(raw.source_record_id),
        payload=replace_nul(raw.payload),
        fetched_at=raw.fetched_at,
        run_id=raw.run_id,
        line=None if raw.line is None else replace_nul(raw.line),
        position=raw.position,
    )
    # the same checksum: the escape was a literal backslash and "u0000" in a string, not U+0000
    unchanged = (rebuilt.source_record_id, rebuilt.checksum, rebuilt.line) == (
        raw.source_record_id,
        raw.checksum,
        raw.line,
    )
    return None if unchanged else rebuilt


@attrs.frozen
class UnifiedRecord:
    """One normalized row per (source, source_record_id), typed for markets and articles.

    Money is Decimal, never float. `checksum` is the raw payload's checksum: the unified row
    changes exactly when the payload it was made from changes.
    """

    source: str
    source_type: SourceType
    source_record_id: str
    kind: RecordKind
    checksum: str
    title: str | None = None
    description: str | None = None
    author: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    url: str | None = None
    published_at: datetime | None = None
    symbol: str | None = None
    asset_name: str | None = None
    price_usd: Decimal | None = None
    market_cap_usd: Decimal | None = None
    volume_24h_usd: Decimal | None = None
    rank: int | None = None
    pct_change_24h: Decimal | None = None
    observed_at: datetime | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    mentions: tuple[str, ...] = ()  # symbols of the assets an article mentions
    asset_id: int | None = None  # the canonical asset a market record quotes
    # a market price is of `symbol` in `quote_currency` (`price`); `price_usd` holds a price only
    # when that quote is USD-like or the price was converted through a USD price of the quote
    quote_currency: str | None = None
    price: Decimal | None = None
    # a bar's own open, high and low in USD (the close is `price_usd`), and its length
    open_usd: Decimal | None = None
    high_usd: Decimal | None = None
    low_usd: Decimal | None = None
    bar_seconds: int | None = None


_SYMBOL = re.compile(r"^[$]?[^\W_][\w.+\-&$]{0,29}$")


def is_symbol(text: str) -> bool:
    """A ticker as every source must give it: up to 30 letters and digits (any script), with
    `. + - _ & $` inside (`USDC.E`, `USD+`, `$WIF`); never markup, spaces or punctuation: one
    rule for the files and the providers alike."""
    return bool(_SYMBOL.match(text))


def market_record(
    raw: RawRecord,
    source_type: SourceType,
    *,
    symbol: str,
    asset_name: str | None,
    price_usd: Decimal | None,
    observed_at: datetime,
    market_cap_usd: Decimal | None = None,
    volume_24h_usd: Decimal | None = None,
    rank: int | None = None,
    pct_change_24h: Decimal | None = None,
    url: str | None = None,
    extra: dict[str, Any] | None = None,
    price_field: str = "price",
    quote_currency: str = "USD",
    price: Decimal | None = None,
    ohlc_usd: tuple[Decimal | None, Decimal | None, Decimal | None] = (None, None, None),
    bar_seconds: int | None = None,
) -> UnifiedRecord:
    """A quote of one asset at one time, made from `raw`, with the rules every source shares:
    no negative price (`price_field` names it as the source does), symbols in upper case, the
    title `Name (SYMBOL)`, the observation time as the record's time, and a market cap of 0 (a
    provider's "unknown") as none. `price` is the price in `quote_currency` (by default the
    USD price itself); `ohlc_usd` a bar's open, high and low in USD."""
    price = price_usd if price is None else price
    if price is not None and price < 0:
        raise InvalidRecord(f"{price_field}: a price cannot be negative ({price})")
    if not is_symbol(symbol):
        raise InvalidRecord(f"symbol: not a symbol: {symbol[:40]!r}")
    upper = symbol.upper()
    return UnifiedRecord(
        source=raw.source,
        source_type=source_type,
        source_record_id=raw.source_record_id,
        kind=RecordKind.MARKET,
        checksum=raw.checksum,
        title=f"{asset_name} ({upper})" if asset_name else upper,
        url=url,
        published_at=observed_at,
        symbol=upper,
        asset_name=asset_name,
        price_usd=price_usd,
        market_cap_usd=market_cap_usd or None,
        volume_24h_usd=volume_24h_usd,
        rank=rank,
        pct_change_24h=pct_change_24h,
        observed_at=observed_at,
        extra=extra or {},
        quote_currency=quote_currency.upper(),
        price=price,
        open_usd=ohlc_usd[0],
        high_usd=ohlc_usd[1],
        low_usd=ohlc_usd[2],
        bar_seconds=bar_seconds,
    )


@attrs.frozen
class StoredRecord:
    """A unified record as the store keeps it, with its id and lineage."""

    id: int
    record: UnifiedRecord
    raw_id: int
    first_run_id: int
    last_run_id: int
    created_at: datetime
    updated_at: datetime


@attrs.frozen
class StoredQuarantine:
    """A quarantined record as kept: the payload as received, why it was refused, by which runs."""

    id: int
    source: str
    source_record_id: str
    reason: str
    payload: dict[str, Any]
    first_run_id: int
    last_run_id: int
    created_at: datetime
    updated_at: datetime


@attrs.frozen
class QuarantinedRecord:
    """A raw record that could not be normalized, kept with the reason."""

    raw: RawRecord
    reason: str
