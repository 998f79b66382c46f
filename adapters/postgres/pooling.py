"""Pooled connections: how each is set up, and borrowing one for reads."""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from application.errors import StoreTooSlow, StoreUnavailable

# the json module's own C scanner, called directly: PostgreSQL sends jsonb (every JSON column
# here) as UTF-8 without surrounding whitespace, so the Python layers of json.loads (encoding
# detection, whitespace checks) are skipped; values are exactly what json.loads gives. A text
# the scanner cannot start on (a `json` value with leading blanks) goes to json.loads.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed names the wrong parameter type
)


def _load_json(data: str | bytes) -> Any:
    text = data if isinstance(data, str) else data.decode("utf-8")
    try:
        return _scan_json(text, 0)[0]
    except StopIteration:
        return json.loads(text)


def configure(connection: psycopg.Connection) -> None:
    """Run by the pool on each new connection."""
    set_json_loads(_load_json, connection)


@contextmanager
def reading(pool: ConnectionPool, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection in autocommit for reads alone: each query is one round trip, where a
    transaction would add a BEGIN before it and the pool's ROLLBACK when it is returned.

    A database that cannot be reached (no connection in time, a connection lost mid-query) is
    `StoreUnavailable`; a query cancelled by the statement timeout is `StoreTooSlow`."""
    with store_errors(), pool.connection(timeout=timeout) as connection:
        connection.autocommit = True
        try:
            yield connection
        finally:
            if not connection.closed:
                connection.autocommit = False


@contextmanager
def store_errors() -> Iterator[None]:
    """The driver's and the pool's faults as the application's: the database is gone or slow."""
    try:
        yield
    except psycopg.errors.QueryCanceled as ex:
        raise StoreTooSlow(f"the database cancelled a query that ran too long ({ex.sqlstate})") from ex
    except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as ex:
        raise StoreUnavailable(f"the database is unreachable: {_first_line(ex)}") from ex


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip().splitlines()
    return text[0] if text else type(ex).__name__
