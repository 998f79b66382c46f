"""Pooled connections: how each is set up, and borrowing one for reads."""

from __future__ import annotations

import functools
import json
import json.scanner
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ParamSpec, Protocol, TypeVar

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from application.errors import StoreConflict, StoreTooSlow, StoreUnavailable

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


class Lender(Protocol):
    """What borrows connections needs of a pool: psycopg_pool's `ConnectionPool`, or the
    `ReadRouter` over read replicas."""

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]: ...

    def putconn(self, conn: psycopg.Connection[Any]) -> None: ...

    def connection(self, timeout: float | None = None) -> AbstractContextManager[psycopg.Connection[Any]]: ...


def configure(connection: psycopg.Connection) -> None:
    """Run by the pool on each new connection."""
    set_json_loads(_load_json, connection)


@contextmanager
def reading(pool: Lender, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection in autocommit for reads alone: each query is one round trip, where a
    transaction would add a BEGIN before it and the pool's ROLLBACK when it is returned.

    A database that cannot be reached (no connection in time, a connection lost mid-query) is
    `StoreUnavailable`; a query cancelled by the statement timeout, or a request past its time
    budget (`WATCHDOG`), is `StoreTooSlow`."""
    with store_errors(), pool.connection(timeout=timeout) as connection, WATCHDOG.watching(connection):
        connection.autocommit = True
        try:
            yield connection
        finally:
            if not connection.closed:
                connection.autocommit = False


class Watchdog:
    """A request's time budget across every statement it runs, kept from the client side.

    The server's `statement_timeout` cancels one slow statement; it cannot help when the server
    itself stops answering (its processes stopped, a stuck disk, a paused VM): a query then
    waits for ever on a socket nobody reads. Within `budget`, each connection a request borrows
    is watched by one thread per process; past the request's deadline (and a grace for the
    server's own cancel to act), the connection's socket is shut down, so the waiting query
    fails at once (and the pool discards the connection). A borrow after the deadline fails
    before it starts. Outside a budget (the ETL, the command line) nothing is watched."""

    def __init__(self, grace: float = 1.0, tick: float = 0.05) -> None:
        self._grace, self._tick = grace, tick
        self._local = threading.local()
        self._lent: dict[int, tuple[float, psycopg.Connection]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def budget(self, seconds: float) -> Iterator[None]:
        self._local.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.deadline = None

    @contextmanager
    def watching(self, connection: psycopg.Connection) -> Iterator[None]:
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            yield
            return
        if time.monotonic() >= deadline:
            raise StoreTooSlow("the request spent its time budget before this query (API_REQUEST_BUDGET_MS)")
        key = id(connection)
        with self._lock:
            self._lent[key] = (deadline + self._grace, connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="kaspero-watchdog", daemon=True)
                self._thread.start()
        try:
            yield
        except psycopg.OperationalError as ex:
            if time.monotonic() >= deadline + self._grace:  # cut by the watchdog: say so
                raise StoreTooSlow(
                    "the database did not answer within the request's time budget (API_REQUEST_BUDGET_MS)"
                ) from ex
            raise
        finally:
            with self._lock:
                self._lent.pop(key, None)

    def _watch(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:
                due = [key for key, (cutoff, _) in self._lent.items() if cutoff <= now]
                overdue = [self._lent.pop(key)[1] for key in due]
            for connection in overdue:
                _cut(connection)


def _cut(connection: psycopg.Connection) -> None:
    """Shut the connection's socket down under the query waiting on it (a duplicate descriptor
    is shut and closed; the connection's own is left for psycopg to close)."""
    try:
        duplicate = socket.socket(fileno=os.dup(connection.fileno()))
    except (OSError, psycopg.Error):
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


WATCHDOG = Watchdog()


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
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as ex:
        raise StoreConflict(
            f"the database aborted a transaction that conflicted with another ({ex.sqlstate}): {_first_line(ex)}"
        ) from ex
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
