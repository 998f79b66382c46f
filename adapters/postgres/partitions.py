"""`market_history`'s yearly partitions: created on demand for the years a batch brings, and
dropped whole when older than the retention (`HISTORY_RETENTION_DAYS`)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql

STAGED_YEARS = """
SELECT DISTINCT extract(year FROM observed_at AT TIME ZONE 'UTC')::integer FROM staging_unified
WHERE asset_id IS NOT NULL AND observed_at IS NOT NULL AND price_usd IS NOT NULL
"""
EXISTING = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'market_history'::regclass
"""
CREATE = "CREATE TABLE IF NOT EXISTS {name} PARTITION OF market_history FOR VALUES FROM ({start}) TO ({end})"
MIN_YEAR, MAX_YEAR = 1, 9998


def partition_name(year: int) -> str:
    return f"market_history_y{year}"


class HistoryPartitions:
    """Remembers, per connection, which yearly partitions exist (a catalog lookup at most once
    per batch with new years)."""

    def __init__(self) -> None:
        self._known: set[str] = set()

    def ensure_for_staged(self, cursor: psycopg.Cursor) -> None:
        years = [row[0] for row in cursor.execute(STAGED_YEARS).fetchall()]
        wanted = {partition_name(year): year for year in years if MIN_YEAR <= year <= MAX_YEAR}
        if not set(wanted) - self._known:
            return
        self._known = {row[0] for row in cursor.execute(EXISTING).fetchall()}
        for name, year in sorted(wanted.items()):
            if name in self._known:
                continue
            start = datetime(year, 1, 1, tzinfo=UTC)
            end = datetime(year + 1, 1, 1, tzinfo=UTC)
            # another loader may create it at the same moment: a savepoint keeps the batch alive
            try:
                with cursor.connection.transaction():
                    # DDL takes no parameters: the bounds are literals (timestamps this code made)
                    cursor.execute(
                        sql.SQL(CREATE).format(
                            name=sql.Identifier(name),
                            start=sql.Literal(start.isoformat()),
                            end=sql.Literal(end.isoformat()),
                        )
                    )
            except (
                psycopg.errors.DuplicateTable,
                psycopg.errors.UniqueViolation,
                psycopg.errors.InvalidObjectDefinition,
            ):
                pass
            self._known.add(name)


def drop_before(connection: psycopg.Connection, cutoff: datetime) -> list[str]:
    """Drop every yearly partition whose whole year ends before `cutoff`; return their names."""
    names = [row[0] for row in connection.execute(EXISTING).fetchall()]
    dropped = []
    for name in sorted(names):
        year = name.removeprefix("market_history_y")
        if not year.isdigit() or datetime(int(year) + 1, 1, 1, tzinfo=UTC) > cutoff:
            continue
        connection.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        dropped.append(name)
    return dropped
