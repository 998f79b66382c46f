"""Pooled connections: how each is set up, and borrowing one for reads."""

from __future__ import annotations

import functools
import json
import json.scanner
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from application.errors import StoreTooSlow, StoreUnavailable

P = ParamSpec("P")

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


class Suspicion:
    """Whether the database was lately seen failing. While it was (for `window` seconds after
    the last fault), every connection is checked as the pool lends it, so the stale ones a
    restart left behind are discarded instead of failing requests; the rest of the time the
    check's round trip is not paid."""

    def __init__(self, window: float = 120.0) -> None:
        self._window = window
        self._last_fault = -float("inf")

    def mark(self) -> None:
        self._last_fault = time.monotonic()

    @property
    def active(self) -> bool:
        return time.monotonic() - self._last_fault < self._window

    def check(self, connection: psycopg.Connection) -> None:
        """The pool's `check` callback."""
        if self.active:
            ConnectionPool.check_connection(connection)


SUSPICION = Suspicion()


@contextmanager
def store_errors() -> Iterator[None]:
    """The driver's and the pool's faults as the application's: the database is gone or slow."""
    try:
        yield
    except psycopg.errors.QueryCanceled as ex:
        raise StoreTooSlow(f"the database cancelled a query that ran too long ({ex.sqlstate})") from ex
    except PoolTimeout as ex:
        SUSPICION.mark()
        raise StoreUnavailable(f"the database is unreachable: {_first_line(ex)}") from ex
    except (psycopg.OperationalError, psycopg.InterfaceError) as ex:
        SUSPICION.mark()
        raise ConnectionLost(f"the database is unreachable: {_first_line(ex)}") from ex


class ConnectionLost(StoreUnavailable):
    """A connection failed in use (the database restarted, or went away): worth one retry on
    another connection, where a pool that could not lend one in time is not."""


T = TypeVar("T")


def retried_once(read: Callable[P, T]) -> Callable[P, T]:
    """A read that met a broken connection (the database restarted since it was pooled) is
    tried once more: by then the pool checks what it lends, so the retry gets a working one."""

    @functools.wraps(read)
    def reading_again(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return read(*args, **kwargs)
        except ConnectionLost:
            return read(*args, **kwargs)

    return reading_again


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip().splitlines()
    return text[0] if text else type(ex).__name__
