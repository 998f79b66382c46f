"""Bars written as the loader stores them (migration 0022; `market_history` is the view of both):
a bar of a file or of a provider's history (a source named `<kind>:<name>`) is a record of
`unified_data` of its own, each row a new record (one meeting a stored bar's asset, source and
time is stored and is not that bar); a provider's snapshot observation (a source named by its kind
alone) a row of `market_snapshots`."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import psycopg

COPY_RECORDS = (
    "COPY unified_data (source_type, source, source_record_id, kind, asset_id, observed_at, published_at,"
    " price_usd, open_usd, high_usd, low_usd, bar_seconds, raw_id, first_run_id, last_run_id, checksum)"
    " FROM STDIN"
)
# as the loader inserts them: an observation of a time already kept is not kept twice
INSERT_SNAPSHOTS = """
INSERT INTO market_snapshots (asset_id, source, observed_at, price_usd, open_usd, high_usd, low_usd, bar_seconds, run_id)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::numeric[], %s::numeric[], %s::numeric[],
                     %s::numeric[], %s::int[], %s::bigint[])
ON CONFLICT DO NOTHING
"""
_NUMBERS = itertools.count(1)

# asset, source, time, price (close), open, high, low, bar length in seconds (None: a snapshot), run
Bar = tuple[int, str, datetime, Decimal, Decimal | None, Decimal | None, Decimal | None, int | None, int]


def write_bars(connection: psycopg.Connection, bars: Iterable[Bar]) -> None:
    """One statement a table, so one statement's trigger folds them into the candles."""
    records, snapshots = [], []
    for bar in bars:
        (records if ":" in bar[1] else snapshots).append(bar)
    if records:
        with connection.cursor().copy(COPY_RECORDS) as copy:
            for asset, source, moment, price, opening, high, low, seconds, run in records:
                kind = "csv" if source.startswith("csv:") else "api"
                record = f"{asset}@{moment.isoformat()}#{next(_NUMBERS)}"
                row = (
                    kind,
                    source,
                    record,
                    "market",
                    asset,
                    moment,
                    moment,
                    price,
                    opening,
                    high,
                    low,
                    seconds,
                )
                copy.write_row((*row, 0, run, run, record))
    if snapshots:
        connection.execute(INSERT_SNAPSHOTS, [list(column) for column in zip(*snapshots, strict=True)])
