"""The hourly and daily candles the database keeps (migration 0011) answer `/assets/{id}/history`
exactly as folding every bar would: whatever the batches, overlaps and ranges."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.postgres.assets import PostgresAssetRepository, history_statement
from domain.assets import Candle, HistoryPoint, HistoryQuery, Interval, bucket_of, candle_of, judge_bars
from tests.support.bars import write_bars

START = datetime(2024, 12, 30, 20, 0, tzinfo=UTC)  # the bars cross a year
SPAN = timedelta(days=4)


def _length(source: str, moment: datetime) -> int | None:
    """Each series' bar length: minute bars, a mix of hourly and daily bars (which no candle of
    their length or shorter folds), and snapshots."""
    if source == "csv:a":
        return 60
    if source == "csv:b":
        return 3600 if moment.second % 2 else 86400
    return None


def _bars(
    rng: random.Random, count: int
) -> list[tuple[str, datetime, Decimal, Decimal | None, Decimal | None, Decimal | None]]:
    bars = []
    for _ in range(count):
        source = rng.choice(["csv:a", "csv:b", "coingecko"])
        moment = START + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        close = Decimal(rng.randint(100, 999)) / 10
        if source == "coingecko":  # a snapshot: its price alone
            bars.append((source, moment, close, None, None, None))
        else:
            bars.append((source, moment, close, close - 1, close + Decimal(rng.randint(1, 9)), close - 2))
    return bars


@pytest.fixture(scope="module")
def stored(database_url: str) -> list[tuple[str, HistoryPoint]]:
    """Six batches of bars, the later ones meeting earlier moments with other prices: stored as
    records of their own, not the bar (the first record of an (asset, source, time) is). One batch
    is two statements in a transaction, one batch repeats moments within itself."""
    from tests.conftest import TABLES

    rng = random.Random(11)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        connection.execute(
            "INSERT INTO etl_runs (trigger, status, started_at) VALUES ('cli', 'success', now())"
        )
        connection.execute("INSERT INTO assets (symbol, name) VALUES ('BTC', 'Bitcoin')")
        earlier: list = []
        for batch in range(6):
            bars = _bars(rng, 700) + rng.sample(earlier, min(len(earlier), 200))
            bars = [(s, t, p + (1 if batch % 2 else 0), o, h, lo) for s, t, p, o, h, lo in bars]
            if batch == 3:
                bars += [(s, t, p + 5, o, h, lo) for s, t, p, o, h, lo in bars[:50]]
            rows = [(1, s, t, p, o, h, lo, _length(s, t), 1) for s, t, p, o, h, lo in bars]
            if batch == 2:
                with connection.transaction():
                    write_bars(connection, rows[: len(rows) // 2])
                    write_bars(connection, rows[len(rows) // 2 :])
            else:
                write_bars(connection, rows)
            earlier.extend(bars)
        rows = connection.execute(
            "SELECT source, observed_at, price_usd, open_usd, high_usd, low_usd FROM market_history"
        ).fetchall()
    return [(s, HistoryPoint(t, p, o, h, lo)) for s, t, p, o, h, lo in rows]


def _expected(stored: list[tuple[str, HistoryPoint]], query: HistoryQuery) -> list[Candle]:
    consensus = query.source == "consensus"
    series: dict[tuple[datetime, str], list[HistoryPoint]] = {}
    for source, point in stored:
        if query.start is not None and point.observed_at < query.start:
            continue
        if query.end is not None and point.observed_at > query.end:
            continue
        if query.source not in (None, "consensus", source):
            continue
        key = (bucket_of(point.observed_at, query.interval.step), "consensus" if consensus else source)
        series.setdefault(key, []).append(point)
    return [candle_of(1, bucket, name, points) for (bucket, name), points in sorted(series.items())]


moments = st.integers(min_value=-3600, max_value=int(SPAN.total_seconds()) + 3600).map(
    lambda s: START + timedelta(seconds=s, microseconds=s % 7)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    interval=st.sampled_from(list(Interval)),
    start=st.none() | moments,
    end=st.none() | moments,
    source=st.sampled_from([None, "consensus", "csv:a", "coingecko"]),
)
def test_history_from_candles_is_history_from_every_bar(
    database_url: str,
    stored: list[tuple[str, HistoryPoint]],
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    source: str | None,
) -> None:
    # no bar suspect here (the fold is what this checks; judging is checked below)
    query = HistoryQuery(interval=interval, start=start, end=end, source=source, suspect=Decimal(1000))
    with psycopg.connect(database_url) as connection:
        found = PostgresAssetRepository(connection).history([1], query)
        judged = PostgresAssetRepository(connection).history([1], attrs.evolve(query, suspect=Decimal("0.1")))
    expected = _expected(stored, query)
    if source is None:  # each candle judged as the domain judges it, against the bucket's others
        by_bucket: dict[datetime, dict[str, Decimal]] = {}
        for candle in expected:
            by_bucket.setdefault(candle.bucket, {})[candle.source] = candle.close
        verdicts = {
            (bucket, name): verdict
            for bucket, closes in by_bucket.items()
            for name, verdict in judge_bars(closes, Decimal("0.1")).items()
        }
        assert [(c.flag, c.deviation_pct) for c in judged] == [verdicts[(c.bucket, c.source)] for c in judged]
    found = [attrs.evolve(c, flag=None, deviation_pct=None) for c in found]
    # ties between sources at one moment (consensus) may open or close with either bar
    if source == "consensus":
        found = [
            Candle(c.bucket, c.source, Decimal(0), c.high, c.low, Decimal(0), c.observations, asset_id=1)
            for c in found
        ]
        expected = [
            Candle(c.bucket, c.source, Decimal(0), c.high, c.low, Decimal(0), c.observations, asset_id=1)
            for c in expected
        ]
    assert found == expected


def test_a_stored_candle_is_the_fold_of_its_bars(
    database_url: str, stored: list[tuple[str, HistoryPoint]]
) -> None:
    with psycopg.connect(database_url) as connection:
        candles = connection.execute(
            "SELECT seconds, bucket, source, open, high, low, close, bars FROM market_candles"
        ).fetchall()
    assert {seconds for seconds, *_ in candles} == {3600, 86400}
    # a candle for every bucket holding a bar shorter than it, and for no other
    assert {(seconds, bucket, source) for seconds, bucket, source, *_ in candles} == {
        (seconds, bucket_of(point.observed_at, timedelta(seconds=seconds)), name)
        for name, point in stored
        for seconds in (3600, 86400)
        if (_length(name, point.observed_at) or 0) < seconds
    }
    for seconds, bucket, source, opening, high, low, closing, bars in candles:
        points = [
            point
            for name, point in stored
            if name == source
            and bucket_of(point.observed_at, timedelta(seconds=seconds)) == bucket
            and (_length(name, point.observed_at) or 0) < seconds  # a bar as long is no candle's
        ]
        assert (opening, high, low, closing, bars) == (
            (c := candle_of(1, bucket, source, points)).open,
            c.high,
            c.low,
            c.close,
            c.observations,
        )


def test_daily_history_reads_stored_candles_and_only_the_edges_bars(database_url: str) -> None:
    query = HistoryQuery(
        interval=Interval.DAY,
        start=datetime(2024, 12, 31, 6, tzinfo=UTC),
        end=datetime(2025, 1, 2, 6, tzinfo=UTC),
    )
    statement, params = history_statement([1], query)
    with psycopg.connect(database_url) as connection:
        shown = "\n".join(
            row[0] for row in connection.execute(psycopg.sql.SQL("EXPLAIN ") + statement, params)
        )
    assert "market_candles_pkey" in shown, shown
    assert "unified_data_long_bars_idx" in shown, shown  # the long bars' index
    # one whole day (2025-01-01) from its candle; the bars of the two partial days around it
    assert params["first"] == datetime(2025, 1, 1, tzinfo=UTC)
    assert params["stop"] == datetime(2025, 1, 2, tzinfo=UTC)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    interval=st.sampled_from(list(Interval)),
    start=st.none() | moments,
    end=st.none() | moments,
    source=st.sampled_from([None, "consensus", "csv:a", "coingecko"]),
    limit=st.integers(min_value=1, max_value=400),
)
def test_a_page_rendered_by_postgresql_is_the_page_rendered_in_python(
    pool: Any,
    stored: list[tuple[str, HistoryPoint]],
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    source: str | None,
    limit: int,
) -> None:
    from adapters.postgres.history_json import PostgresRenderedHistory
    from adapters.postgres.uow import PostgresUnitOfWork
    from application.assets import asset_history
    from entrypoints.api.render import dumps, history_page

    query = HistoryQuery(interval=interval, start=start, end=end, source=source, limit=limit)
    rendered = PostgresRenderedHistory(pool).page_json([1], query)
    page = asset_history(lambda: PostgresUnitOfWork(pool), {1: "BTC"}, query)
    if rendered is None:  # a bucket with more candles than the page: only Python pages it, whole
        # (with nothing after it, that page is the last: no next_start, as hypothesis once found)
        assert len(page.candles) > limit
        assert len({candle.bucket for candle in page.candles}) == 1
        return
    python = json.loads(dumps(history_page(page)))
    assert json.loads(rendered.candles_json) == python["data"]
    assert rendered.next_start == page.next_start
