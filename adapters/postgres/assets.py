"""Canonical assets, their aliases, and their price history, in PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from adapters.postgres.reader import contains_pattern
from application.queries import Page
from domain.assets import (
    BUCKET_ORIGIN,
    Alias,
    Asset,
    Candle,
    HistoryQuery,
    Method,
    SourceQuote,
    whole_buckets,
)
from domain.bars import UsdRate
from domain.plausibility import Reference

SELECT_ALIASES = """
SELECT a.source, a.source_asset_id, a.asset_id
FROM asset_aliases a
JOIN unnest(%(sources)s::text[], %(ids)s::text[]) AS k(source, source_asset_id) USING (source, source_asset_id)
"""
SELECT_ASSETS = "SELECT id, symbol, name, needs_review FROM assets WHERE symbol = ANY(%(symbols)s)"
# a lock per symbol until the transaction ends, taken in one order (sorted) so that two batches
# wanting overlapping symbols wait for each other instead of deadlocking; the SELECT after it
# then sees the assets another batch made and committed meanwhile
LOCK_SYMBOLS = """
SELECT count(pg_advisory_xact_lock(hashtextextended('kaspero.asset:' || symbol, 0)))
FROM (SELECT DISTINCT unnest(%(symbols)s::text[]) AS symbol ORDER BY 1) sorted
"""
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
# A bucket's candle from the pieces in it: bars (a snapshot's price counts as open, high, low and
# close) and, for the whole hours or days inside the range, the candles the database keeps
# (migration 0011) — the first piece's open, the highest high, the lowest low, the last piece's
# close, and how many bars. Range conditions are plain comparisons on observed_at or bucket, written
# only when given, so each piece is one range of an index: the bars' (asset, source, time) or the
# long bars' (asset, time), both partial indexes of unified_data (migration 0022), and the candles'
# key.
#
# Each source's candle of a bucket is judged against the others' of the same asset and bucket
# (`domain.assets.judge_bars`): with three sources or more, one whose close is further than
# `suspect` (a fraction) from the median close of all of them is `suspect`; of two sources that
# far apart, both are `disputed`. The consensus folds the sources' candles but the suspect ones.
SELECT_HISTORY = """
WITH per_source AS (
    SELECT date_bin(%(step)s, at, %(origin)s) AS bucket, asset_id, source,
           (array_agg(open ORDER BY open_at))[1] AS open, min(open_at) AS open_at, max(high) AS high,
           min(low) AS low, (array_agg(close ORDER BY close_at DESC))[1] AS close, max(close_at) AS close_at,
           sum(bars) AS bars
    FROM ({pieces}) AS pieces
    GROUP BY 1, 2, 3
), spread AS (
    -- each candle with its bucket's closes in order (a window over the bucket's sources):
    -- the lowest, the highest and the exact median, the middle close or the mean of the two middle
    SELECT *, closes[1] AS lowest, closes[sources] AS highest,
           (closes[(sources + 1) / 2] + closes[sources / 2 + 1]) / 2 AS median
    FROM (
        SELECT *, count(*) OVER bucket AS sources, array_agg(close) OVER bucket AS closes
        FROM per_source
        WINDOW bucket AS (
            PARTITION BY bucket, asset_id ORDER BY close ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        )
    ) AS windowed
), judged AS (
    SELECT *,
           CASE WHEN sources >= 3 AND median > 0 AND abs(close - median) > median * %(suspect)s THEN 'suspect'
                WHEN sources = 2 AND lowest > 0 AND highest - lowest > lowest * %(suspect)s THEN 'disputed'
           END AS flag,
           CASE WHEN sources >= 3 AND median > 0 THEN round(abs(close - median) / median * 100, 2)
                WHEN sources = 2 AND lowest > 0 THEN round((highest - lowest) / lowest * 100, 2)
           END AS deviation
    FROM spread
)
{select}
{limit}
"""
PER_SOURCE = """
SELECT bucket, asset_id, source, open, high, low, close, bars, flag, deviation FROM judged {where}
ORDER BY 1, 2, 3
"""
CONSENSUS = """
SELECT bucket, asset_id, 'consensus', (array_agg(open ORDER BY open_at))[1], max(high), min(low),
       (array_agg(close ORDER BY close_at DESC))[1], sum(bars), NULL, NULL
FROM judged WHERE flag IS DISTINCT FROM 'suspect'
GROUP BY 1, 2 ORDER BY 1, 2
"""
# The bars of a range, of the two kinds `market_history` shows (migration 0022), read from their
# tables rather than through the view, for a cheaper plan: a record's bars by the bars' index,
# each key's first record kept by DISTINCT ON over the index's own order (no probe a bar); the
# long bars (few: a candle's length or longer) by their own index, each key's first record found
# by a probe of the bars' index (a key's first record may be shorter, and then is the bar); a
# provider's snapshots by their key.
PIECE = """
SELECT observed_at AS at, asset_id, source, observed_at AS open_at, coalesce(open_usd, price_usd) AS open,
       coalesce(high_usd, price_usd) AS high, coalesce(low_usd, price_usd) AS low,
       observed_at AS close_at, price_usd AS close, 1 AS bars
FROM ({bars}) AS b
"""
RECORD_BARS = """
SELECT DISTINCT ON (asset_id, source, observed_at) asset_id, source, observed_at, price_usd, open_usd, high_usd, low_usd
FROM unified_data
WHERE asset_id IS NOT NULL AND observed_at IS NOT NULL AND price_usd IS NOT NULL AND strpos(source, ':') > 0
  AND {where}
ORDER BY asset_id, source, observed_at, id
"""
LONG_RECORD_BARS = """
SELECT u.asset_id, u.source, u.observed_at, u.price_usd, u.open_usd, u.high_usd, u.low_usd
FROM unified_data u
WHERE u.asset_id IS NOT NULL AND u.observed_at IS NOT NULL AND u.price_usd IS NOT NULL AND strpos(u.source, ':') > 0
  AND {where}
  AND NOT EXISTS (
      SELECT 1 FROM unified_data o
      WHERE o.asset_id = u.asset_id AND o.source = u.source AND o.observed_at = u.observed_at AND o.id < u.id
        AND o.price_usd IS NOT NULL AND strpos(o.source, ':') > 0
  )
"""
SNAPSHOT_BARS = """
SELECT asset_id, source, observed_at, price_usd, open_usd, high_usd, low_usd FROM market_snapshots WHERE {where}
"""
CANDLES = """
SELECT bucket AS at, asset_id, source, open_at, open, high, low, close_at, close, bars
FROM market_candles WHERE {where}
"""
# the candle lengths migration 0011 keeps; a candle folds only the bars shorter than it, and the
# bars as long or longer are read where they are (a partial index holds them: its predicate,
# `bar_seconds >= 3600`, is implied by a literal bound, so the bound is written as one)
STORED_CANDLES = frozenset({3600, 86400})
LONG_BARS = "bar_seconds >= {seconds:d}"


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
        self._connection.execute(LOCK_SYMBOLS, {"symbols": list(symbols)})
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
            "search": contains_pattern(search) if search else None,
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

    def history(self, asset_ids: Sequence[int], query: HistoryQuery) -> list[Candle]:
        statement, params = history_statement(asset_ids, query)
        rows = self._connection.execute(statement, params).fetchall()
        return [
            Candle(
                bucket,
                series,
                opening,
                high,
                low,
                closing,
                int(count),
                asset_id=int(asset),
                flag=flag,
                deviation_pct=deviation,
            )
            for bucket, asset, series, opening, high, low, closing, count, flag, deviation in rows
        ]


# the last USD price of the asset within each bar, from any source's history
# per bar, each source's last USD price within it, and their median (an observed price, exact)
SELECT_USD_RATES = """
SELECT b.start, b.seconds,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY h.price_usd), max(h.observed_at),
       string_agg(h.source, ',' ORDER BY h.source)
FROM unnest(%(starts)s::timestamptz[], %(seconds)s::int[]) AS b (start, seconds)
CROSS JOIN LATERAL (
    SELECT DISTINCT ON (m.source) m.price_usd, m.observed_at, m.source FROM market_history m
    WHERE m.asset_id = ANY(%(assets)s)
      AND m.observed_at >= b.start AND m.observed_at < b.start + make_interval(secs => b.seconds)
    ORDER BY m.source, m.observed_at DESC
) h
GROUP BY b.start, b.seconds
"""
# each asset's sources other than one, by a skip scan over the (asset_id, source, observed_at)
# indexes of the two kinds of bars (migration 0022): one probe of each a source, whatever the
# number of rows (the records' bars read in unified_data itself: which record of a key is the bar
# does not matter here)
NEXT_SOURCE = """least(
    (SELECT min(m.source) FROM unified_data m
     WHERE m.asset_id = {asset} AND m.source > {after} AND m.observed_at IS NOT NULL AND m.price_usd IS NOT NULL
       AND strpos(m.source, ':') > 0),
    (SELECT min(s.source) FROM market_snapshots s WHERE s.asset_id = {asset} AND s.source > {after})
)"""
SELECT_OTHER_SOURCES = """
WITH RECURSIVE found AS (
    SELECT a.asset_id, {first} AS source
    FROM unnest(%(assets)s::bigint[]) AS a (asset_id)
    UNION ALL
    SELECT f.asset_id, {next}
    FROM found f WHERE f.source IS NOT NULL
)
SELECT asset_id, source FROM found WHERE source IS NOT NULL AND source <> %(source)s ORDER BY 1, 2
""".format(
    first=NEXT_SOURCE.format(asset="a.asset_id", after="''"),
    next=NEXT_SOURCE.format(asset="f.asset_id", after="f.source"),
)
# per (bar, source): the source's last USD price within the bar; the median across sources
SELECT_REFERENCE_PRICES = """
SELECT b.asset_id, b.start, b.seconds,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY p.price_usd), array_agg(b.source ORDER BY b.source)
FROM unnest(%(assets)s::bigint[], %(starts)s::timestamptz[], %(seconds)s::int[], %(sources)s::text[])
     AS b (asset_id, start, seconds, source)
CROSS JOIN LATERAL (
    SELECT m.price_usd FROM market_history m
    WHERE m.asset_id = b.asset_id AND m.source = b.source
      AND m.observed_at >= b.start AND m.observed_at < b.start + make_interval(secs => b.seconds)
    ORDER BY m.observed_at DESC LIMIT 1
) p
GROUP BY b.asset_id, b.start, b.seconds
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

    def other_sources(self, asset_ids: Sequence[int], source: str) -> dict[int, tuple[str, ...]]:
        if not asset_ids:
            return {}
        found: dict[int, list[str]] = {}
        for asset_id, other in self._connection.execute(
            SELECT_OTHER_SOURCES, {"assets": sorted(set(asset_ids)), "source": source}
        ):
            found.setdefault(int(asset_id), []).append(other)
        return {asset_id: tuple(names) for asset_id, names in found.items()}

    def reference_prices(
        self, bars: Sequence[tuple[int, datetime, int]], sources: Mapping[int, Sequence[str]]
    ) -> dict[tuple[int, datetime, int], Reference]:
        rows = [
            (asset, start, seconds, name) for asset, start, seconds in bars for name in sources.get(asset, ())
        ]
        if not rows:
            return {}
        params = {
            "assets": [row[0] for row in rows],
            "starts": [row[1] for row in rows],
            "seconds": [row[2] for row in rows],
            "sources": [row[3] for row in rows],
        }
        return {
            (int(asset), start, seconds): Reference(price, tuple(names))
            for asset, start, seconds, price, names in self._connection.execute(
                SELECT_REFERENCE_PRICES, params
            )
        }


def history_statement(asset_ids: Sequence[int], query: HistoryQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """SELECT_HISTORY over the pieces that answer the query: stored candles for the whole buckets
    inside its range when its interval is a stored length, the bars themselves for the rest."""
    consensus = query.source == "consensus"
    step = query.interval.step
    params: dict[str, Any] = {"ids": list(asset_ids), "step": step, "origin": BUCKET_ORIGIN}
    # every source's bars are read, one source asked or not: a candle is judged against the others'
    common = [sql.SQL("asset_id = ANY(%(ids)s)")]
    params["suspect"] = query.suspect
    if query.start is not None:
        params["start"] = query.start
    if query.end is not None:
        params["end"] = query.end
    first, stop = whole_buckets(query.start, query.end, step)
    seconds = int(step.total_seconds())
    bar_ranges: list[tuple[str, list[str]]] = []  # the records' query, and its range
    pieces: list[sql.Composable] = []
    if seconds in STORED_CANDLES and (first is None or stop is None or first < stop):
        params.update(seconds=seconds, first=first, stop=stop)
        candles = [*common, sql.SQL("seconds = %(seconds)s")]
        if first is not None:
            candles.append(sql.SQL("bucket >= %(first)s"))
            bar_ranges.append((RECORD_BARS, ["observed_at >= %(start)s", "observed_at < %(first)s"]))
        if stop is not None:
            candles.append(sql.SQL("bucket < %(stop)s"))
            bar_ranges.append((RECORD_BARS, ["observed_at >= %(stop)s", "observed_at <= %(end)s"]))
        pieces.append(sql.SQL(CANDLES).format(where=sql.SQL(" AND ").join(candles)))
        whole = [LONG_BARS.format(seconds=seconds)]
        whole += ["observed_at >= %(first)s"] if first is not None else []
        whole += ["observed_at < %(stop)s"] if stop is not None else []
        bar_ranges.append((LONG_RECORD_BARS, whole))
    else:
        bar_ranges.append(
            (
                RECORD_BARS,
                (["observed_at >= %(start)s"] if query.start is not None else [])
                + (["observed_at <= %(end)s"] if query.end is not None else []),
            )
        )
    for records, bounds in bar_ranges:
        where = sql.SQL(" AND ").join([*common, *map(sql.SQL, bounds)])
        for bars in (records, SNAPSHOT_BARS):
            pieces.append(sql.SQL(PIECE).format(bars=sql.SQL(bars).format(where=where)))
    select: sql.Composable
    if consensus:
        select = sql.SQL(CONSENSUS)
    elif query.source is not None:
        select, params["source"] = (
            sql.SQL(PER_SOURCE).format(where=sql.SQL("WHERE source = %(source)s")),
            query.source,
        )
    else:
        select = sql.SQL(PER_SOURCE).format(where=sql.SQL(""))
    limit = sql.SQL("")
    if query.limit is not None:
        limit, params["limit"] = sql.SQL("LIMIT %(limit)s"), query.limit
    statement = sql.SQL(SELECT_HISTORY).format(
        pieces=sql.SQL(" UNION ALL ").join(pieces), select=select, limit=limit
    )
    return statement, params
