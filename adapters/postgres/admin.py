"""Server-level administration: databases created and dropped on a PostgreSQL server."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from application.errors import StoreUnavailable


def create_database(server_url: str, name: str) -> str:
    """Create a database on the server if it does not exist; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url_for(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_url_for(server_url: str, name: str) -> str:
    """The same server, another database: swaps the URL's path."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + name))


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Connect once and ask the server something: the reason it cannot be used, or nothing.

    Raises `StoreUnavailable` with libpq's own reason (refused, unknown host, authentication
    failed, no such database, a malformed URL); the URL itself is never in the message."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as connection:
            connection.execute("SELECT 1")
    except (psycopg.Error, ValueError) as ex:
        lines = [line.strip() for line in str(ex).strip().splitlines() if line.strip()]
        reason = "; ".join(lines[:2]) or type(ex).__name__
        raise StoreUnavailable(reason) from ex
