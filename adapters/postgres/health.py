"""Is the database there, and does it have every migration this code expects?"""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

from adapters.postgres.pooling import Lender, reading
from application.errors import StoreUnavailable
from domain.health import SourceRunState
from domain.runs import RunStatus

SELECT_APPLIED = "SELECT migration_id FROM _yoyo_migration"


class PostgresHealthProbe:
    def __init__(self, pool: ConnectionPool, expected_migrations: list[str], timeout: float = 2.0) -> None:
        self._pool = pool
        self._expected = expected_migrations
        self._timeout = timeout

    def database_reachable(self) -> bool:
        try:
            with reading(self._pool, self._timeout) as connection:
                connection.execute("SELECT 1")
        except (psycopg.Error, StoreUnavailable):
            return False
        return True

    def pending_migrations(self) -> list[str]:
        try:
            with reading(self._pool, self._timeout) as connection:
                applied = {row[0] for row in connection.execute(SELECT_APPLIED)}
        except psycopg.errors.UndefinedTable:
            applied = set()
        return [migration for migration in self._expected if migration not in applied]


# each source's newest finished run through the (source, run_id DESC) index: a skip scan over
# the distinct sources, one index probe each, whatever the length of the history
SELECT_LATEST_FINISHED = """
WITH RECURSIVE sources AS (
    SELECT min(source) AS source FROM etl_run_sources
    UNION ALL
    SELECT (SELECT min(source) FROM etl_run_sources WHERE source > sources.source)
    FROM sources WHERE sources.source IS NOT NULL
)
SELECT newest.source, newest.run_id, newest.status, newest.started_at, newest.finished_at, newest.error
FROM sources
CROSS JOIN LATERAL (
    SELECT source, run_id, status, started_at, finished_at, error
    FROM etl_run_sources r
    WHERE r.source = sources.source AND r.status <> 'running'
      -- a replay of the quarantine, or a backfill's history windows (`coingecko:1d`, its job says
      -- how it went), says nothing of the source's own scheduled runs
      AND NOT EXISTS (SELECT 1 FROM etl_runs e WHERE e.id = r.run_id AND e.trigger IN ('replay', 'backfill'))
    ORDER BY r.run_id DESC
    LIMIT 1
) newest
"""


class PostgresSourceRunLedger:
    def __init__(self, pool: Lender, timeout: float = 2.0) -> None:
        self._pool = pool
        self._timeout = timeout

    def latest_finished(self) -> list[SourceRunState]:
        with reading(self._pool, self._timeout) as connection:
            return [
                SourceRunState(source, int(run_id), RunStatus(status), started, finished, error)
                for source, run_id, status, started, finished, error in connection.execute(
                    SELECT_LATEST_FINISHED
                )
            ]
