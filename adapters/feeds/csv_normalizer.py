"""A CSV row of daily market history becomes a market record of its symbol at that date.

`price_usd` is the close, `observed_at` (and `published_at`, the record's time on the unified
axis) the date; open, high and low are kept in `extra` as exact decimal strings, with every
column the mapping does not know.
"""

from __future__ import annotations

from typing import Any

import pydantic

from adapters.boundary import Money, RequiredMoment, RequiredMoney, RequiredText, Text, validated
from adapters.feeds.csv_columns import map_header
from domain.records import RawRecord, SourceType, UnifiedRecord, market_record


class CsvMarketRow(pydantic.BaseModel):
    """The typed view of one row; required: symbol, date and close."""

    model_config = pydantic.ConfigDict(frozen=True)

    symbol: RequiredText
    observed_at: RequiredMoment
    asset_name: Text = None
    open: Money = None
    high: Money = None
    low: Money = None
    close: RequiredMoney
    volume: Money = None
    market_cap: Money = None


class CsvMarketNormalizer:
    """Normalizes rows of one CSV file, whose header fixes the column mapping."""

    def __init__(self) -> None:
        self._mappings: dict[tuple[str, ...], dict[str, str]] = {}

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        columns = self._mapping(tuple(raw.payload))
        fields = {field: raw.payload.get(column) for field, column in columns.items()}
        row = validated(CsvMarketRow, fields, columns)
        mapped = set(columns.values())
        extra: dict[str, Any] = {
            name: str(value)
            for name, value in (("open", row.open), ("high", row.high), ("low", row.low))
            if value is not None
        }
        extra.update({k: v for k, v in raw.payload.items() if k not in mapped and v not in ("", None)})
        return market_record(
            raw,
            SourceType.CSV,
            price_field=columns["close"],
            symbol=row.symbol,
            asset_name=row.asset_name,
            price_usd=row.close,
            observed_at=row.observed_at,
            market_cap_usd=row.market_cap,
            volume_24h_usd=row.volume,
            extra=extra,
        )

    def _mapping(self, header: tuple[str, ...]) -> dict[str, str]:
        mapping = self._mappings.get(header)
        if mapping is None:
            mapping = self._mappings[header] = map_header(header)
        return mapping
