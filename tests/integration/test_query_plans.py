"""Every index on the bulk tables is there for a query the API runs: EXPLAIN of the very
statements the readers build shows each one used, and history ranges read by their indexes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from adapters.postgres.assets import history_statement
from adapters.postgres.reader import SELECT_RECORDS, records_where
from application.queries import DataQuery, SortField, SortOrder
from domain.assets import HistoryQuery, Interval
from domain.records import RecordKind

FILL = """
INSERT INTO etl_runs (trigger, status, started_at) VALUES ('cli', 'success', now());
INSERT INTO assets (symbol, name) SELECT 'S' || g, 'Coin ' || g FROM generate_series(1, 500) g;
INSERT INTO unified_data (source_type, source, source_record_id, kind, title, description, author, category,
                          mentions, symbol, asset_name, price_usd, published_at, observed_at, raw_id,
                          first_run_id, last_run_id, checksum, asset_id)
SELECT CASE WHEN g % 20 = 0 THEN 'rss' ELSE 'api' END,
       CASE WHEN g % 20 = 0 THEN 'rss:news' ELSE 'coingecko' END, 'r' || g,
       CASE WHEN g % 20 = 0 THEN 'article' ELSE 'market' END,
       CASE WHEN g % 20 = 0 THEN 'Headline ' || md5(g::text) ELSE 'Coin ' || (g % 500 + 1) || ' (S' || (g % 500 + 1) || ')' END,
       CASE WHEN g % 20 = 0 THEN 'Text ' || md5((g * 7)::text) END,
       CASE WHEN g % 20 = 0 THEN 'Author ' || (g % 50) END,
       CASE WHEN g % 20 = 0 THEN 'Category ' || (g % 30) END,
       CASE WHEN g % 20 = 0 THEN ARRAY['S' || (g % 500 + 1)] ELSE '{}' END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE 'S' || (g % 500 + 1) END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE 'Coin ' || (g % 500 + 1) END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE g END,
       timestamptz '2024-01-01' + g * interval '1 minute', timestamptz '2024-01-01' + g * interval '1 minute',
       g, 1, 1, md5(g::text), CASE WHEN g % 20 = 0 THEN NULL ELSE g % 500 + 1 END
FROM generate_series(1, 60000) g
"""


def _fill(database_url: str, rows: int, article_every: int) -> str:
    from tests.conftest import TABLES

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        for statement in FILL.strip().split(";\n"):
            connection.execute(
                statement.replace("60000", str(rows)).replace("g % 20 = 0", f"g % {article_every} = 0")
            )
        connection.execute("ANALYZE unified_data")
        connection.execute("ANALYZE assets")
    return database_url


@pytest.fixture(scope="module")
def filled(database_url: str) -> str:
    """60,000 records (a twentieth of them articles, as news is beside prices) with fresh
    statistics: realistic plans."""
    return _fill(database_url, 60_000, 20)


def plan(database_url: str, statement: Any, params: dict[str, Any], seqscan: bool = True) -> str:
    with psycopg.connect(database_url) as connection:
        if not seqscan:  # a small table is cheapest read whole: ask which index serves the filter
            connection.execute("SET enable_seqscan = off")
        rows = connection.execute(sql.SQL("EXPLAIN ") + statement, params).fetchall()
    return "\n".join(row[0] for row in rows)


def records_plan(database_url: str, query: DataQuery, assets: list[int] | None = None) -> str:
    where, params = records_where(query, assets)
    column, direction = sql.Identifier(query.sort_by.value), sql.SQL(query.sort_order.value.upper())
    statement = sql.SQL(SELECT_RECORDS).format(where=where, sort=column, direction=direction)
    return plan(database_url, statement, {**params, "limit": 20, "offset": 0}, seqscan=not query.search)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (DataQuery(), "unified_data_published_idx"),
        (DataQuery(kind=RecordKind.ARTICLE), "unified_data_article_kind_idx"),
        (DataQuery(kind=RecordKind.MARKET), "unified_data_published_idx"),
        (DataQuery(symbol="BTC"), "unified_data_symbol_idx"),
        (DataQuery(symbol="BTC"), "unified_data_article_mentions_idx"),
        (DataQuery(category="Markets"), "unified_data_article_category_idx"),
        (DataQuery(author="Ana Ruiz"), "unified_data_article_author_idx"),
        (DataQuery(asset_id=7), "unified_data_asset_idx"),
    ],
)
def test_each_data_filter_is_served_by_its_index(filled: str, query: DataQuery, index: str) -> None:
    shown = records_plan(filled, query, assets=[1, 2])
    assert index in shown, shown


def test_search_finds_market_records_through_their_assets(filled: str) -> None:
    shown = records_plan(
        filled, DataQuery(search="coin 3", sort_by=SortField.PRICE_USD, sort_order=SortOrder.DESC), [3]
    )
    assert "unified_data_asset_idx" in shown


def test_history_ranges_read_their_bars_through_the_bars_indexes(filled: str) -> None:
    """A bar is its record (migration 0022): the history reads the records that are bars by the
    partial indexes of unified_data, a range of one asset's, never the table; the first record of
    each (asset, source, time) found by a probe of the same index."""
    ranged = HistoryQuery(
        interval=Interval.HOUR, start=datetime(2024, 1, 5, tzinfo=UTC), end=datetime(2024, 1, 20, tzinfo=UTC)
    )
    shown = plan(filled, *history_statement([7], ranged))
    assert "market_candles_pkey" in shown, shown  # the whole hours inside the range
    scans = [line for line in shown.splitlines() if " on unified_data" in line]
    assert scans, shown
    assert not any("Seq Scan" in line for line in scans), shown
    assert any("unified_data_bars_idx" in line for line in scans), (
        shown
    )  # the ragged ends, and each key's first
    # without a range, days come from the stored candles and the bars a day long or longer (their
    # own partial index); 5-minute buckets read every bar of the asset by the bars' index
    daily = plan(filled, *history_statement([7], HistoryQuery(interval=Interval.DAY)))
    assert "market_candles" in daily
    read = [line for line in daily.splitlines() if " on unified_data" in line]
    assert not any("Seq Scan" in line for line in read), daily
    assert any("unified_data_long_bars_idx" in line for line in read), daily
    everything = plan(filled, *history_statement([7], HistoryQuery(interval=Interval.FIVE_MINUTES)))
    read = [line for line in everything.splitlines() if " on unified_data" in line]
    assert read, everything
    assert not any("Seq Scan" in line for line in read), everything
    assert set(re.findall(r"unified_data_\w+_idx", everything)) == {"unified_data_bars_idx"}, everything
