"""Bars written as the loader stores them: a record of `unified_data` each (a bar is its record,
migration 0022; `market_history` is the view of the records that are bars). Each row is a new
record: one meeting a stored bar's (asset, source, time) is stored and is not that bar."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import psycopg

COPY_BARS = (
    "COPY unified_data (source_type, source, source_record_id, kind, asset_id, observed_at, published_at,"
    " price_usd, open_usd, high_usd, low_usd, bar_seconds, raw_id, first_run_id, last_run_id, checksum)"
    " FROM STDIN"
)
_NUMBERS = itertools.count(1)

# asset, source, time, price (close), open, high, low, bar length in seconds (None: a snapshot), run
Bar = tuple[int, str, datetime, Decimal, Decimal | None, Decimal | None, Decimal | None, int | None, int]


def write_bars(connection: psycopg.Connection, bars: Iterable[Bar]) -> None:
    """One COPY, so one statement's trigger folds them into the candles."""
    with connection.cursor().copy(COPY_BARS) as copy:
        for asset, source, moment, price, opening, high, low, seconds, run in bars:
            kind = "csv" if source.startswith("csv:") else "api"
            record = f"{asset}@{moment.isoformat()}#{next(_NUMBERS)}"
            row = (kind, source, record, "market", asset, moment, moment, price, opening, high, low, seconds)
            copy.write_row((*row, 0, run, run, record))
