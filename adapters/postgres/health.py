"""Is the database there, and does it have every migration this code expects?"""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

from adapters.postgres.pooling import reading
from application.errors import StoreUnavailable

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
