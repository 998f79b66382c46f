"""The PostgreSQL unit of work: one pooled connection, one transaction, rolled back unless committed."""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Self

import psycopg

from adapters.postgres.assets import PostgresAssetRepository, PostgresUsdRateRepository
from adapters.postgres.drifts import PostgresDriftRepository
from adapters.postgres.pooling import WATCHDOG, Lender, store_errors
from adapters.postgres.records import PostgresMaintenance, PostgresRecordRepository
from adapters.postgres.runs import PostgresCheckpointRepository, PostgresRunRepository
from adapters.postgres.scheduling import PostgresRunRequestRepository, PostgresScheduleRepository
from application.errors import StoreTooSlow


class PostgresUnitOfWork:
    """Borrows a connection on enter and returns it on exit, after rolling back what is uncommitted.

    The pool's own `connection()` context would commit on a clean exit; this class does not
    rely on it, so forgetting `commit()` can never write anything.
    """

    records: PostgresRecordRepository
    observations: PostgresRecordRepository
    checkpoints: PostgresCheckpointRepository
    runs: PostgresRunRepository
    drifts: PostgresDriftRepository
    requests: PostgresRunRequestRepository
    schedule: PostgresScheduleRepository
    assets: PostgresAssetRepository
    rates: PostgresUsdRateRepository
    maintenance: PostgresMaintenance

    def __init__(self, pool: Lender, timeout: float | None = None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._connection: psycopg.Connection | None = None
        self._watched: AbstractContextManager[None] | None = None

    def __enter__(self) -> Self:
        with store_errors():
            connection = self._connection = self._pool.getconn(self._timeout)
        self._watched = WATCHDOG.watching(connection)  # a request's time budget, when it has one
        try:
            self._watched.__enter__()
        except BaseException:
            self._connection = None
            self._pool.putconn(connection)
            raise
        self.records = self.observations = self.blocks = PostgresRecordRepository(connection)
        self.checkpoints = PostgresCheckpointRepository(connection)
        self.runs = PostgresRunRepository(connection)
        self.drifts = PostgresDriftRepository(connection)
        self.requests = PostgresRunRequestRepository(connection)
        self.schedule = PostgresScheduleRepository(connection)
        self.assets = PostgresAssetRepository(connection)
        self.rates = PostgresUsdRateRepository(connection)
        self.maintenance = PostgresMaintenance(connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        watched, self._watched = self._watched, None
        spent: StoreTooSlow | None = None
        try:
            if watched is not None:
                watched.__exit__(exc_type, exc, tb)
        except StoreTooSlow as ex:
            spent = ex  # the watchdog cut this connection: the budget, not the network, is why
        try:
            if not connection.closed and not connection.broken:
                connection.rollback()
        except psycopg.Error:
            pass  # the connection died with the database; the pool discards it
        finally:
            self._pool.putconn(connection)
        if spent is not None:
            raise spent
        if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.OperationalError | psycopg.InterfaceError):
            with store_errors():
                raise exc

    def commit(self) -> None:
        assert self._connection is not None, "commit() outside of `with uow:`"
        self._connection.commit()

    def rollback(self) -> None:
        assert self._connection is not None, "rollback() outside of `with uow:`"
        self._connection.rollback()
