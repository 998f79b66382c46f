"""Session-wide PostgreSQL for the tests: `DATABASE_URL`'s server when set, else the embedded one.

Either way the suite works in a database of its own, created and migrated once per session and
dropped at the end, so it never touches the data `make run` keeps.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from adapters.postgres.admin import create_database, database_url_for, drop_database
from adapters.postgres.embedded import EmbeddedPostgres
from adapters.postgres.pooling import configure
from entrypoints.bootstrap import migrate

REPO = Path(__file__).resolve().parent.parent
TABLES = (
    "market_candles, market_snapshots, asset_aliases, assets, provider_responses, run_observations, run_requests, schedule_marks, schema_drifts, checkpoints, quarantine, unified_data, raw_coinpaprika, raw_coingecko, "
    "raw_csv_batches, raw_csv, raw_rss, raw_binance, backfill_windows, backfill_jobs, provider_budgets, etl_run_sources, etl_runs"
)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL to a maintenance database on the server the tests use."""
    given = os.environ.get("DATABASE_URL", "").strip()
    if given:
        yield database_url_for(given, "postgres")
        return
    embedded = EmbeddedPostgres(REPO / ".kaspero" / "test")
    started_here = not embedded.is_running()
    yield embedded.start()
    if started_here:
        embedded.stop()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this session."""
    name = f"kaspero_test_{uuid.uuid4().hex[:10]}"
    url = create_database(server_url, name)
    migrate(url)
    yield url
    drop_database(server_url, name)


@pytest.fixture
def database(server_url: str) -> Iterator[str]:
    """A database of the test's own, not migrated (a test that rolls migrations back and forth),
    dropped after it."""
    name = f"kaspero_own_{uuid.uuid4().hex[:8]}"
    url = create_database(server_url, name)
    yield url
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def pool(database_url: str) -> Iterator[ConnectionPool]:
    # set up as the application's pool is (its JSON loader)
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True, configure=configure) as pool:
        yield pool


@pytest.fixture
def clean_database(database_url: str) -> str:
    """The session database, emptied before the test."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return database_url


@pytest.fixture
def pg_pool(pool: ConnectionPool, clean_database: str) -> ConnectionPool:
    """The session pool over an emptied database."""
    return pool
