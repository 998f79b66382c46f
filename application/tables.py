"""Query results as tables, for DataFrames (`Kaspero.prices`, `Kaspero.records`).

The store renders a result as CSV text (RFC 4180, a header row, then a row per candle or record)
and hands it over a chunk at a time: no Python object is made per row or per value on the way,
and the caller reads the text straight into columns (Arrow). The columns and what each holds are
declared here, once, for every store and reader: moments as microseconds since the Unix epoch
(UTC), money as the stored decimal written whole, integers, and text (empty: none).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

from application.ports import Tables
from application.queries import DataQuery
from domain.assets import HistoryQuery

# (column, kind): kind is one of "time" (µs since the epoch, UTC), "money", "integer", "text"
HISTORY_TABLE = (
    ("bucket", "time"),
    ("asset_id", "integer"),
    ("source", "text"),
    ("open", "money"),
    ("high", "money"),
    ("low", "money"),
    ("close", "money"),
    ("observations", "integer"),
    ("flag", "text"),  # suspect, disputed or none (`domain.assets.judge_bars`)
    ("deviation_pct", "money"),
)
RECORD_TABLE = (
    ("id", "integer"),
    ("source_type", "text"),
    ("source", "text"),
    ("source_record_id", "text"),
    ("kind", "text"),
    ("symbol", "text"),
    ("asset_name", "text"),
    ("asset_id", "integer"),
    ("quote_currency", "text"),
    ("price", "money"),
    ("price_usd", "money"),
    ("open_usd", "money"),
    ("high_usd", "money"),
    ("low_usd", "money"),
    ("bar_seconds", "integer"),
    ("market_cap_usd", "money"),
    ("volume_24h_usd", "money"),
    ("rank", "integer"),
    ("pct_change_24h", "money"),
    ("observed_at", "time"),
    ("published_at", "time"),
    ("title", "text"),
    ("url", "text"),
    ("raw_id", "integer"),
    ("first_run_id", "integer"),
    ("last_run_id", "integer"),
)


def history_table(tables: Tables, assets: Mapping[int, str], query: HistoryQuery) -> Iterator[bytes]:
    """The candles of `assets` (named by `application.assets.history_assets`) as HISTORY_TABLE's
    CSV, the whole range (a query's `limit` is for pages)."""
    return tables.history_csv(list(assets), attrs.evolve(query, limit=None))


def records_table(tables: Tables, query: DataQuery) -> Iterator[bytes]:
    """The records matching `query`'s filters as RECORD_TABLE's CSV."""
    return tables.records_csv(query)
