"""Canonical assets, their aliases, and their price history, in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from application.queries import Page
from domain.assets import Alias, Asset, Candle, HistoryQuery, Method, SourceQuote
from domain.bars import UsdRate

SELECT_ALIASES = """
SELECT a.source, a.source_asset_id, a.asset_id
FROM asset_aliases a
JOIN unnest(%(sources)s::text[], %(ids)s::text[]) AS k(source, source_asset_id) USING (source, source_asset_id)
"""
SELECT_ASSETS = "SELECT id, symbol, name, needs_review FROM assets WHERE symbol = ANY(%(symbols)s)"
SELECT_RANKS = """
SELECT asset_id, min(rank) FROM unified_data WHERE asset_id = ANY(%(ids)s) AND rank IS NOT NULL GROUP BY asset_id
"""
INSERT_ASSETS = """
INSERT INTO assets (symbol, name, needs_review)
SELECT * FROM unnest(%(symbols)s::text[], %(names)s::text[], %(reviews)s::boolean[])
RETURNING id, symbol, name
"""
INSERT_ALIASES = """
INSERT INTO asset_aliases (source, source_asset_id, asset_id, method, confidence)
SELECT * FROM unnest(%(sources)s::text[], %(ids)s::text[], %(assets)s::bigint[], %(methods)s::text[],
                     %(confidences)s::numeric[])
ON CONFLICT (source, source_asset_id) DO NOTHING
"""
FIND_ASSETS = """
SELECT id, symbol, name, needs_review, count(*) OVER () AS total FROM assets
WHERE (%(symbol)s::text IS NULL OR symbol = %(symbol)s)
  AND (%(search)s::text IS NULL OR name ILIKE %(search)s)
ORDER BY id LIMIT %(limit)s OFFSET %(offset)s
"""
SELECT_ASSET = "SELECT id, symbol, name, needs_review FROM assets WHERE id = %(id)s"
SELECT_ALIASES_OF = """
SELECT source, source_asset_id, asset_id, method, confidence FROM asset_aliases
WHERE asset_id = %(id)s ORDER BY source, source_asset_id
"""
SELECT_LATEST_QUOTES = """
SELECT DISTINCT ON (source) source, price_usd, observed_at FROM unified_data
WHERE asset_id = %(id)s AND kind = 'market' AND price_usd IS NOT NULL
ORDER BY source, observed_at DESC NULLS LAST
"""
# a bucket's candle from the bars in it: the first one's open, the highest high, the lowest low,
# the last one's close (a snapshot's price counts as all four). The range conditions are written
# only when given, as plain comparisons on observed_at, so the planner prunes the yearly
# partitions a range does not touch.
SELECT_HISTORY = """
SELECT date_bin(%(step)s, observed_at, timestamptz '2000-01-01') AS bucket,
       {series} AS series,
       (array_agg(coalesce(open_usd, price_usd) ORDER BY observed_at))[1],
       max(coalesce(high_usd, price_usd)), min(coalesce(low_usd, price_usd)),
       (array_agg(price_usd ORDER BY observed_at DESC))[1], count(*)
FROM market_history
WHERE {where}
GROUP BY 1, 2 ORDER BY 1, 2
LIMIT 5000
"""


class PostgresAssetRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def aliases(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        params = {"sources": [source for source, _ in keys], "ids": [key for _, key in keys]}
        return {
            (source, key): int(asset)
            for source, key, asset in self._connection.execute(SELECT_ALIASES, params)
        }

    def with_symbols(self, symbols: Sequence[str]) -> list[Asset]:
        rows = self._connection.execute(SELECT_ASSETS, {"symbols": list(symbols)})
        return [Asset(int(i), symbol, name, review) for i, symbol, name, review in rows]

    def ranks(self, asset_ids: Sequence[int]) -> dict[int, int]:
        rows = self._connection.execute(SELECT_RANKS, {"ids": list(asset_ids)})
        return {int(asset): int(rank) for asset, rank in rows}

    def create(self, assets: Sequence[Asset]) -> list[int]:
        params = {
            "symbols": [asset.symbol for asset in assets],
            "names": [asset.name for asset in assets],
            "reviews": [asset.needs_review for asset in assets],
        }
        made = {(symbol, name): int(i) for i, symbol, name in self._connection.execute(INSERT_ASSETS, params)}
        return [made[(asset.symbol, asset.name)] for asset in assets]

    def link(self, aliases: Sequence[Alias]) -> None:
        if not aliases:
            return
        self._connection.execute(
            INSERT_ALIASES,
            {
                "sources": [alias.source for alias in aliases],
                "ids": [alias.source_asset_id for alias in aliases],
                "assets": [alias.asset_id for alias in aliases],
                "methods": [alias.method.value for alias in aliases],
                "confidences": [alias.confidence for alias in aliases],
            },
        )

    def find(self, symbol: str | None, search: str | None, page: int, page_size: int) -> Page[Asset]:
        params = {
            "symbol": symbol,
            "search": f"%{search}%" if search else None,
            "limit": page_size,
            "offset": (page - 1) * page_size,
        }
        rows = self._connection.execute(FIND_ASSETS, params).fetchall()
        total = int(rows[0][4]) if rows else 0
        items = [Asset(int(i), s, n, r) for i, s, n, r, _ in rows]
        return Page(items=items, page=page, page_size=page_size, total_items=total)

    def get(self, asset_id: int) -> Asset | None:
        row = self._connection.execute(SELECT_ASSET, {"id": asset_id}).fetchone()
        return Asset(int(row[0]), row[1], row[2], row[3]) if row else None

    def aliases_of(self, asset_id: int) -> list[Alias]:
        return [
            Alias(source, key, int(asset), Method(method), float(confidence))
            for source, key, asset, method, confidence in self._connection.execute(
                SELECT_ALIASES_OF, {"id": asset_id}
            )
        ]

    def latest_quotes(self, asset_id: int) -> list[SourceQuote]:
        rows = self._connection.execute(SELECT_LATEST_QUOTES, {"id": asset_id})
        return [SourceQuote(source, price, observed) for source, price, observed in rows]

    def history(self, asset_id: int, query: HistoryQuery) -> list[Candle]:
        statement, params = history_statement(asset_id, query)
        rows = self._connection.execute(statement, params).fetchall()
        return [
            Candle(bucket, series, opening, high, low, closing, int(count))
            for bucket, series, opening, high, low, closing, count in rows
        ]


# the last USD price of the asset within each bar, from any source's history
SELECT_USD_RATES = """
SELECT b.start, b.seconds, h.price_usd, h.observed_at, h.source
FROM unnest(%(starts)s::timestamptz[], %(seconds)s::int[]) AS b (start, seconds)
CROSS JOIN LATERAL (
    SELECT m.price_usd, m.observed_at, m.source FROM market_history m
    WHERE m.asset_id = ANY(%(assets)s)
      AND m.observed_at >= b.start AND m.observed_at < b.start + make_interval(secs => b.seconds)
    ORDER BY m.observed_at DESC LIMIT 1
) h
"""
SELECT_ASSETS_OF_SYMBOL = "SELECT id FROM assets WHERE symbol = %(symbol)s"


class PostgresUsdRateRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def usd_rates(
        self, symbol: str, bars: Sequence[tuple[datetime, int]]
    ) -> dict[tuple[datetime, int], UsdRate]:
        assets = [
            row[0] for row in self._connection.execute(SELECT_ASSETS_OF_SYMBOL, {"symbol": symbol.upper()})
        ]
        if not assets or not bars:
            return {}
        params = {
            "starts": [start for start, _ in bars],
            "seconds": [seconds for _, seconds in bars],
            "assets": assets,
        }
        return {
            (start, seconds): UsdRate(symbol.upper(), price, observed_at, source)
            for start, seconds, price, observed_at, source in self._connection.execute(
                SELECT_USD_RATES, params
            )
        }


def history_statement(asset_id: int, query: HistoryQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """SELECT_HISTORY with the conditions the query has, and its parameters."""
    consensus = query.source == "consensus"
    conditions = [sql.SQL("asset_id = %(id)s")]
    params: dict[str, Any] = {"id": asset_id, "step": query.interval.step}
    if query.start is not None:
        conditions.append(sql.SQL("observed_at >= %(start)s"))
        params["start"] = query.start
    if query.end is not None:
        conditions.append(sql.SQL("observed_at <= %(end)s"))
        params["end"] = query.end
    if query.source is not None and not consensus:
        conditions.append(sql.SQL("source = %(source)s"))
        params["source"] = query.source
    series = sql.SQL("'consensus'") if consensus else sql.SQL("source")
    statement = sql.SQL(SELECT_HISTORY).format(series=series, where=sql.SQL(" AND ").join(conditions))
    return statement, params
