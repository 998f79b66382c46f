"""Reads from hot standbys: a lender of connections that prefers the replicas' pools, in turn,
and falls back on the primary's when none can lend one, so reads go on through a replica's
outage (on the primary) and through the primary's (on the replicas). What must see its own
writes never borrows here: it keeps the primary's pool.

A replica that could not lend a connection is left out for `rest` seconds, so a request does
not wait for a dead server's pool on every borrow."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from adapters.postgres.pooling import store_errors
from domain.health import ReplicaState


class ReadRouter:
    """`getconn` / `putconn` / `connection` of a `ConnectionPool`, over several pools."""

    def __init__(
        self,
        replicas: Sequence[ConnectionPool],
        primary: ConnectionPool,
        borrow_timeout: float = 1.0,
        rest: float = 5.0,
    ) -> None:
        self._replicas, self._primary = list(replicas), primary
        self._borrow_timeout, self._rest = borrow_timeout, rest
        self._turn = itertools.count()
        self._resting: dict[int, float] = {}  # replica index -> monotonic time it may be tried again
        self._lenders: dict[int, ConnectionPool] = {}
        self._lock = threading.Lock()

    def getconn(self, timeout: float | None = None) -> psycopg.Connection:
        start = next(self._turn)
        now = time.monotonic()
        with self._lock:  # shared by the request threads, as `_lenders`
            awake = [
                index
                for index in ((start + offset) % len(self._replicas) for offset in range(len(self._replicas)))
                if self._resting.get(index, 0.0) <= now
            ]
        for index in awake:
            pool = self._replicas[index]
            try:
                connection = pool.getconn(timeout=min(self._borrow_timeout, timeout or self._borrow_timeout))
            except (PoolTimeout, psycopg.OperationalError):
                with self._lock:
                    self._resting[index] = time.monotonic() + self._rest
                continue
            return self._lent(connection, pool)
        return self._lent(self._primary.getconn(timeout=timeout), self._primary)

    def putconn(self, connection: psycopg.Connection) -> None:
        with self._lock:
            pool = self._lenders.pop(id(connection))
        pool.putconn(connection)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """As the pool's own: a transaction left open is committed on a clean exit, rolled back
        on an error."""
        connection = self.getconn(timeout)
        try:
            yield connection
            if connection.info.transaction_status == pq.TransactionStatus.INTRANS:
                connection.commit()
        except BaseException:
            if not connection.closed and connection.info.transaction_status != pq.TransactionStatus.IDLE:
                connection.rollback()
            raise
        finally:
            self.putconn(connection)

    def _lent(self, connection: psycopg.Connection, pool: ConnectionPool) -> psycopg.Connection:
        with self._lock:
            self._lenders[id(connection)] = pool
        return connection


# 0 while everything received is replayed (an idle primary sends nothing: no lag), else the age
# of the last transaction replayed; NULL on a server that is no standby
SELECT_LAG = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END
"""


def replica_name(url: str) -> str:
    """host:port/database of a URL, never its user or password."""
    parts = urlsplit(url)
    host = parts.hostname or dict(part.split("=", 1) for part in parts.query.split("&") if "=" in part).get(
        "host", "localhost"
    )
    return f"{host}:{parts.port or 5432}{parts.path or '/'}"


class ReplicaProbe:
    """Each replica's state, asked on its own pool (a short wait: a dead one is answered fast)."""

    def __init__(self, pools: Sequence[tuple[str, ConnectionPool]], timeout: float = 1.0) -> None:
        self._pools, self._timeout = list(pools), timeout

    def replicas(self) -> list[ReplicaState]:
        states = []
        for name, pool in self._pools:
            try:
                with store_errors(), pool.connection(timeout=self._timeout) as connection:
                    row = connection.execute(SELECT_LAG).fetchone()
            except Exception as ex:
                states.append(
                    ReplicaState(name, False, None, str(ex).splitlines()[0] if str(ex) else type(ex).__name__)
                )
                continue
            in_recovery, lag = row if row else (False, None)
            if not in_recovery:
                states.append(ReplicaState(name, True, None, "not a standby: it accepts writes (promoted?)"))
            else:
                states.append(ReplicaState(name, True, float(lag) if lag is not None else None))
        return states
