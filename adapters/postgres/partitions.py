"""`market_history`'s yearly partitions: created on demand for the years a batch brings, and
dropped whole when older than the retention (`HISTORY_RETENTION_DAYS`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg
from psycopg import sql

EXISTING = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'market_history'::regclass
"""
CREATE = "CREATE TABLE IF NOT EXISTS {name} PARTITION OF market_history FOR VALUES FROM ({start}) TO ({end})"
DROP_CANDLES = "DELETE FROM market_candles WHERE bucket >= %(start)s AND bucket < %(end)s"
MIN_YEAR, MAX_YEAR = 1, 9998


def partition_name(year: int) -> str:
    return f"market_history_y{year}"


class HistoryPartitions:
    """Which yearly partitions exist, remembered for the process: a batch whose years are all
    known costs no query; a new year costs one catalog lookup and its `CREATE`. (A partition
    dropped by the retention is for years no new data comes in, and the catalog is asked again
    whenever a year is not known.)"""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str, str], set[int]] = {}  # per database
        self._guard = threading.Lock()

    def ensure(self, cursor: psycopg.Cursor, years: Iterable[int]) -> None:
        wanted = {year for year in years if MIN_YEAR <= year <= MAX_YEAR}
        info = cursor.connection.info
        database = (info.host, str(info.port), info.dbname)
        with self._guard:
            if wanted <= self._known.get(database, set()):
                return
            existing = {row[0] for row in cursor.execute(EXISTING).fetchall()}
            for year in sorted(wanted):
                if partition_name(year) not in existing:
                    _create(cursor, year)
            self._known[database] = set(wanted) | {
                int(name.removeprefix("market_history_y"))
                for name in existing
                if name.removeprefix("market_history_y").isdigit()
            }

    def forget(self) -> None:
        with self._guard:
            self._known.clear()


def _create(cursor: psycopg.Cursor, year: int) -> None:
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    # another loader may create it at the same moment: a savepoint keeps the batch alive
    try:
        with cursor.connection.transaction():
            # DDL takes no parameters: the bounds are literals (timestamps this code made)
            cursor.execute(
                sql.SQL(CREATE).format(
                    name=sql.Identifier(partition_name(year)),
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


# one per process: every unit of work's loader shares what is known
PROCESS_PARTITIONS = HistoryPartitions()


def drop_before(connection: psycopg.Connection, cutoff: datetime) -> list[str]:
    """Drop every yearly partition whose whole year ends before `cutoff`, and the candles of its
    year; return their names."""
    names = [row[0] for row in connection.execute(EXISTING).fetchall()]
    dropped = []
    for name in sorted(names):
        year = name.removeprefix("market_history_y")
        if not year.isdigit() or datetime(int(year) + 1, 1, 1, tzinfo=UTC) > cutoff:
            continue
        connection.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        # the year's candles go with its bars (UTC years are whole days and hours)
        start = datetime(int(year), 1, 1, tzinfo=UTC)
        connection.execute(DROP_CANDLES, {"start": start, "end": start.replace(year=start.year + 1)})
        dropped.append(name)
    if dropped:
        PROCESS_PARTITIONS.forget()
    return dropped
