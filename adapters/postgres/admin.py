"""Server-level administration: databases created and dropped on a PostgreSQL server."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


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
