"""The read side of `/data`: filtered, sorted, paged queries over `unified_data`."""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from application.queries import DataQuery, Page, SortOrder
from domain.records import RecordKind, SourceType, StoredRecord, UnifiedRecord

SELECT_RECORDS = """
SELECT * FROM unified_data {where}
ORDER BY {sort} {direction} NULLS LAST, id {direction}
LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_RECORDS = "SELECT count(*) FROM unified_data {where}"
SELECT_RECORD = "SELECT * FROM unified_data WHERE id = %(id)s"


class PostgresRecordReader:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def find(self, query: DataQuery) -> Page[StoredRecord]:
        where, params = _where(query)
        select = sql.SQL(SELECT_RECORDS).format(
            where=where,
            sort=sql.Identifier(query.sort_by.value),
            direction=sql.SQL("ASC" if query.sort_order is SortOrder.ASC else "DESC"),
        )
        params |= {"limit": query.page_size, "offset": query.offset}
        with self._pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            rows = cursor.execute(select, params).fetchall()
            if query.page == 1 and len(rows) < query.page_size:
                total = len(rows)  # the whole result fits on this page: no count needed
            else:
                count = connection.execute(sql.SQL(COUNT_RECORDS).format(where=where), params).fetchone()
                total = int(count[0]) if count else 0
        return Page(
            items=[stored_record_from_row(row) for row in rows],
            page=query.page,
            page_size=query.page_size,
            total_items=total,
        )

    def get(self, record_id: int) -> StoredRecord | None:
        with self._pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            row = cursor.execute(SELECT_RECORD, {"id": record_id}).fetchone()
        return stored_record_from_row(row) if row else None


def _where(query: DataQuery) -> tuple[sql.Composable, dict[str, Any]]:
    conditions: list[sql.Composable] = []
    params: dict[str, Any] = {}

    def equal(column: str, value: object) -> None:
        if value is not None:
            conditions.append(sql.SQL("{} = %({})s").format(sql.Identifier(column), sql.SQL(column)))
            params[column] = value.value if hasattr(value, "value") else value

    equal("source_type", query.source_type)
    equal("source", query.source)
    equal("kind", query.kind)
    equal("symbol", query.symbol.upper() if query.symbol else None)
    equal("category", query.category)
    equal("author", query.author)
    if query.search:
        conditions.append(sql.SQL("(title ILIKE %(search)s OR description ILIKE %(search)s)"))
        params["search"] = "%" + _escape_like(query.search) + "%"
    if query.start_date:
        conditions.append(sql.SQL("published_at >= %(start_date)s"))
        params["start_date"] = query.start_date
    if query.end_date:
        conditions.append(sql.SQL("published_at <= %(end_date)s"))
        params["end_date"] = query.end_date
    if not conditions:
        return sql.SQL(""), params
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions), params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def stored_record_from_row(row: dict[str, Any]) -> StoredRecord:
    record = UnifiedRecord(
        source=row["source"],
        source_type=SourceType(row["source_type"]),
        source_record_id=row["source_record_id"],
        kind=RecordKind(row["kind"]),
        checksum=row["checksum"],
        title=row["title"],
        description=row["description"],
        author=row["author"],
        category=row["category"],
        tags=tuple(row["tags"] or ()),
        url=row["url"],
        published_at=row["published_at"],
        symbol=row["symbol"],
        asset_name=row["asset_name"],
        price_usd=row["price_usd"],
        market_cap_usd=row["market_cap_usd"],
        volume_24h_usd=row["volume_24h_usd"],
        rank=row["rank"],
        pct_change_24h=row["pct_change_24h"],
        observed_at=row["observed_at"],
        extra=dict(row["extra"] or {}),
    )
    return StoredRecord(
        id=int(row["id"]),
        record=record,
        raw_id=int(row["raw_id"]),
        first_run_id=int(row["first_run_id"]),
        last_run_id=int(row["last_run_id"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
