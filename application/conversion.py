"""Prices quoted in another asset (ETC/BTC) get USD values through a USD price of that asset
observed within the same bar, or stay without: never a Bitcoin-denominated number in a USD field."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from application.ports import IngestUnit
from domain.bars import UsdRate, convert, needs_conversion
from domain.pairs import UsdQuotes
from domain.records import UnifiedRecord

DEFAULT_BAR_SECONDS = 60  # a snapshot (no bar length known) converts only through a price within a minute


def convert_to_usd(records: list[UnifiedRecord], uow: IngestUnit, usd: UsdQuotes) -> list[UnifiedRecord]:
    """`records`, each one quoted in a non-USD asset converted where a USD price of its quote
    asset was observed within its bar (by any source); the rest unchanged."""
    wanted: dict[str, set[tuple[datetime, int]]] = defaultdict(set)
    for record in records:
        if needs_conversion(record, usd) and record.observed_at is not None and record.quote_currency:
            wanted[record.quote_currency].add((record.observed_at, record.bar_seconds or DEFAULT_BAR_SECONDS))
    if not wanted:
        return records
    rates = {
        (quote, bar): rate
        for quote, bars in wanted.items()
        for bar, rate in uow.rates.usd_rates(quote, sorted(bars)).items()
    }
    return [_converted(record, rates, usd) for record in records]


def _converted(
    record: UnifiedRecord, rates: dict[tuple[str, tuple[datetime, int]], UsdRate], usd: UsdQuotes
) -> UnifiedRecord:
    if not needs_conversion(record, usd) or record.observed_at is None or not record.quote_currency:
        return record
    rate = rates.get((record.quote_currency, (record.observed_at, record.bar_seconds or DEFAULT_BAR_SECONDS)))
    return record if rate is None else convert(record, rate)
