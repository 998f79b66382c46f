"""The read side of `/data`: filtered, sorted, paged queries over `unified_data`."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from adapters.postgres.pooling import Lender, reading, retried_once
from application.queries import DataQuery, Page, SortOrder, next_key
from domain.records import RecordKind, SourceType, StoredRecord, UnifiedRecord

# explicit columns in a fixed order, read back by position (no dict per row)
RECORD_COLUMNS = """id, raw_id, first_run_id, last_run_id, created_at, updated_at, source_type, source,
source_record_id, kind, title, description, author, category, tags, url, published_at, symbol,
asset_name, price_usd, market_cap_usd, volume_24h_usd, rank, pct_change_24h, observed_at, extra,
checksum, mentions, asset_id, quote_currency, price, open_usd, high_usd, low_usd, bar_seconds"""
SELECT_RECORDS = (
    """
SELECT """
    + RECORD_COLUMNS
    + """ FROM unified_data {where}
ORDER BY {sort} {direction} NULLS LAST, id {direction}
LIMIT %(limit)s OFFSET %(offset)s
"""
)
# never counts past the limit, whatever the planner believed (stale statistics after a bulk load)
COUNT_RECORDS = "SELECT count(*) FROM (SELECT 1 FROM unified_data {where} LIMIT %(count_cap)s) capped"
ESTIMATE_RECORDS = "EXPLAIN (FORMAT JSON) SELECT 1 FROM unified_data {where}"
SELECT_RECORD = "SELECT " + RECORD_COLUMNS + " FROM unified_data WHERE id = %(id)s"
# a count is exact while the planner expects no more rows than this; past it, the estimate is served
EXACT_COUNT_LIMIT = 20_000


ESTIMATE_TTL_SECONDS = 10.0


class EstimateCache:
    """Estimated totals per filter for `ttl` seconds, shared by the request threads of a worker:
    every read and write under one lock, at most `size` entries (all forgotten past it)."""

    def __init__(self, ttl: float = ESTIMATE_TTL_SECONDS, size: int = 1000) -> None:
        self._ttl, self._size = ttl, size
        self._entries: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> int | None:
        with self._lock:
            found = self._entries.get(key)
        return found[1] if found is not None and time.monotonic() - found[0] < self._ttl else None

    def put(self, key: str, estimate: int) -> None:
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), estimate)


class PostgresRecordReader:
    """Estimated totals are remembered per filter for a few seconds: they are estimates anyway,
    and asking the planner on every page costs a round trip."""

    def __init__(self, pool: Lender) -> None:
        self._pool = pool
        self._estimates = EstimateCache()

    @retried_once
    def find(self, query: DataQuery) -> Page[StoredRecord]:
        with reading(self._pool) as connection:
            assets = assets_named(connection, query.search) if query.search else []
            where, params = records_where(query, assets)
            cursor = connection.cursor()
            rows = self._rows(cursor, query, where, params)
            total, estimated = self._total(connection, query, where, params, len(rows))
        items = [stored_record_from_row(row) for row in rows]
        return Page(
            items=items,
            page=query.page,
            page_size=query.page_size,
            total_items=total,
            total_is_estimate=estimated,
            next_after=next_key(items, query),
        )

    def _rows(
        self,
        cursor: psycopg.Cursor[tuple[Any, ...]],
        query: DataQuery,
        where: sql.Composable,
        params: dict[str, Any],
        limit: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """An offset page, or a keyset page: first the rows with a sort value past the key, then
        (NULLS LAST) the rows without one; each part a range scan of the sort index. `limit`:
        this many rows instead of the query's page size (an export's batch)."""
        column, direction = sql.Identifier(query.sort_by.value), _direction(query)
        size = limit or query.page_size
        if query.after is None:
            select = sql.SQL(SELECT_RECORDS).format(where=where, sort=column, direction=direction)
            return cursor.execute(select, {**params, "limit": size, "offset": query.offset}).fetchall()
        comparison = sql.SQL(">" if query.sort_order is SortOrder.ASC else "<")
        rows: list[tuple[Any, ...]] = []
        if query.after.value is not None:
            past = sql.SQL(
                "({col} IS NOT NULL AND ({col}, id) {cmp} (%(after_value)s, %(after_id)s))"
            ).format(col=column, cmp=comparison)
            select = sql.SQL(SELECT_RECORDS).format(
                where=where + sql.SQL(" AND ") + past, sort=column, direction=direction
            )
            args = {**params, "after_value": query.after.value, "after_id": query.after.id}
            rows = cursor.execute(select, {**args, "limit": size, "offset": 0}).fetchall()
        if len(rows) < size:
            nulls = sql.SQL("{col} IS NULL").format(col=column)
            if query.after.value is None:
                nulls = sql.SQL("({col} IS NULL AND id {cmp} %(after_id)s)").format(
                    col=column, cmp=comparison
                )
            select = sql.SQL(SELECT_RECORDS).format(
                where=where + sql.SQL(" AND ") + nulls, sort=column, direction=direction
            )
            args = {**params, "after_id": query.after.id, "limit": size - len(rows), "offset": 0}
            rows += cursor.execute(select, args).fetchall()
        return rows

    def _total(
        self,
        connection: psycopg.Connection[Any],
        query: DataQuery,
        where: sql.Composable,
        params: dict[str, Any],
        fetched: int,
    ) -> tuple[int, bool]:
        if query.after is None and query.page == 1 and fetched < query.page_size:
            return fetched, False  # the whole result fits on this page: no count needed
        key = f"{where.as_string(connection)}|{sorted(params.items())}"
        remembered = self._estimates.get(key)
        if remembered is not None:
            return remembered, True
        plan = connection.execute(sql.SQL(ESTIMATE_RECORDS).format(where=where), params).fetchone()
        estimate = int(plan[0][0]["Plan"]["Plan Rows"]) if plan else 0
        if estimate > EXACT_COUNT_LIMIT:
            self._estimates.put(key, estimate)
            return estimate, True
        capped = connection.execute(
            sql.SQL(COUNT_RECORDS).format(where=where), {**params, "count_cap": EXACT_COUNT_LIMIT + 1}
        ).fetchone()
        count = int(capped[0]) if capped else 0
        if count > EXACT_COUNT_LIMIT:  # the statistics were wrong: serve the estimate
            return max(estimate, count), True
        return count, False

    @retried_once
    def export_batch(self, query: DataQuery, limit: int) -> list[StoredRecord]:
        with reading(self._pool) as connection:
            assets = assets_named(connection, query.search) if query.search else []
            where, params = records_where(query, assets)
            rows = self._rows(connection.cursor(), query, where, params, limit)
        return [stored_record_from_row(row) for row in rows]

    @retried_once
    def get(self, record_id: int) -> StoredRecord | None:
        with reading(self._pool) as connection:
            row = connection.execute(SELECT_RECORD, {"id": record_id}).fetchone()
        return stored_record_from_row(row) if row else None


def _direction(query: DataQuery) -> sql.Composable:
    return sql.SQL("ASC" if query.sort_order is SortOrder.ASC else "DESC")


# market records are found by what identifies them: their asset's symbol or name
SELECT_ASSETS_NAMED = (
    "SELECT id FROM assets WHERE name ILIKE %(search)s OR symbol ILIKE %(search)s LIMIT 10000"
)


def assets_named(connection: psycopg.Connection[Any], search: str) -> list[int]:
    rows = connection.execute(SELECT_ASSETS_NAMED, {"search": contains_pattern(search)})
    return [int(row[0]) for row in rows]


def records_where(query: DataQuery, assets: list[int] | None = None) -> tuple[sql.Composable, dict[str, Any]]:
    """The filters as SQL. Conditions on article-only columns say `kind = 'article'`, so the
    partial indexes that hold articles alone serve them."""
    conditions: list[sql.Composable] = []
    params: dict[str, Any] = {}
    articles = sql.SQL("kind = 'article'")

    def equal(column: str, value: object) -> None:
        if value is not None:
            conditions.append(sql.SQL("{} = %({})s").format(sql.Identifier(column), sql.SQL(column)))
            params[column] = value.value if hasattr(value, "value") else value

    def any_of(column: str, values: tuple[str, ...]) -> None:
        if len(values) == 1:
            equal(column, values[0])
        elif values:
            conditions.append(sql.SQL("{} = ANY(%({})s)").format(sql.Identifier(column), sql.SQL(column)))
            params[column] = list(values)

    equal("source_type", query.source_type)
    any_of("source", query.source)
    if query.kind is not None:
        # written out (one of two values): the index of articles alone is a partial one, which a
        # plan made for any value of a parameter could not use
        conditions.append(sql.SQL("kind = {}").format(sql.Literal(query.kind.value)))
    if len(query.symbol) == 1:
        # a quote of the asset, or news that mentions it
        conditions.append(
            sql.SQL("(symbol = %(symbol)s OR ({} AND mentions @> ARRAY[%(symbol)s]::text[]))").format(
                articles
            )
        )
        params["symbol"] = query.symbol[0].upper()
    elif query.symbol:
        conditions.append(
            sql.SQL("(symbol = ANY(%(symbol)s) OR ({} AND mentions && %(symbol)s::text[]))").format(articles)
        )
        params["symbol"] = [symbol.upper() for symbol in query.symbol]
    equal("asset_id", query.asset_id)
    any_of("quote_currency", query.quote_currency)
    for column in ("category", "author"):
        value = getattr(query, column)
        if value is not None:
            conditions.append(
                sql.SQL("({} AND {} = %({})s)").format(articles, sql.Identifier(column), sql.SQL(column))
            )
            params[column] = value
    if query.search:
        # articles by their text (the trigram indexes hold articles only), market records by their asset
        conditions.append(
            sql.SQL(
                "(({} AND (title ILIKE %(search)s OR description ILIKE %(search)s))"
                " OR asset_id = ANY(%(search_assets)s))"
            ).format(articles)
        )
        params["search"] = contains_pattern(query.search)
        params["search_assets"] = assets or []
    if query.start_date:
        conditions.append(sql.SQL("published_at >= %(start_date)s"))
        params["start_date"] = query.start_date
    if query.end_date:
        conditions.append(sql.SQL("published_at <= %(end_date)s"))
        params["end_date"] = query.end_date
    # always a WHERE clause (TRUE without filters), so a keyset condition can simply be ANDed on
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions or [sql.SQL("TRUE")]), params


def contains_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own `%`, `_` and `\\` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_SOURCE_TYPES = {member.value: member for member in SourceType}
_KINDS = {member.value: member for member in RecordKind}


def stored_record_from_row(row: tuple[Any, ...]) -> StoredRecord:
    """A row of RECORD_COLUMNS as the domain's record."""
    (
        record_id, raw_id, first_run_id, last_run_id, created_at, updated_at, source_type, source,
        source_record_id, kind, title, description, author, category, tags, url, published_at,
        symbol, asset_name, price_usd, market_cap_usd, volume_24h_usd, rank, pct_change_24h,
        observed_at, extra, checksum, mentions, asset_id, quote_currency, price, open_usd, high_usd,
        low_usd, bar_seconds,
    ) = row  # fmt: skip
    record = UnifiedRecord(
        source=source,
        source_type=_SOURCE_TYPES[source_type],
        source_record_id=source_record_id,
        kind=_KINDS[kind],
        checksum=checksum,
        title=title,
        description=description,
        author=author,
        category=category,
        tags=tuple(tags or ()),
        url=url,
        published_at=published_at,
        symbol=symbol,
        asset_name=asset_name,
        price_usd=price_usd,
        market_cap_usd=market_cap_usd,
        volume_24h_usd=volume_24h_usd,
        rank=rank,
        pct_change_24h=pct_change_24h,
        observed_at=observed_at,
        extra=extra or {},
        mentions=tuple(mentions or ()),
        asset_id=asset_id,
        quote_currency=quote_currency,
        price=price,
        open_usd=open_usd,
        high_usd=high_usd,
        low_usd=low_usd,
        bar_seconds=bar_seconds,
    )
    return StoredRecord(
        id=record_id,
        record=record,
        raw_id=raw_id,
        first_run_id=first_run_id,
        last_run_id=last_run_id,
        created_at=created_at,
        updated_at=updated_at,
    )
