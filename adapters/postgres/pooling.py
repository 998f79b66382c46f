"""Borrowing pooled connections for reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool


@contextmanager
def reading(pool: ConnectionPool, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection in autocommit for reads alone: each query is one round trip, where a
    transaction would add a BEGIN before it and the pool's ROLLBACK when it is returned."""
    with pool.connection(timeout=timeout) as connection:
        connection.autocommit = True
        try:
            yield connection
        finally:
            if not connection.closed:
                connection.autocommit = False
