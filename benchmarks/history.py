"""history: `/assets/{id}/history` over a large `market_history` (one-minute bars for twenty pairs,
generated in SQL into the migrated, partitioned table), served by gunicorn with the production
config and loaded by 8 connections: daily candles over a year, hourly over a month, 5-minute over a
day. 2,000,000 rows by default; the issue's 20,000,000 (two years of minute bars for twenty pairs)
with BENCH_SCALE=1, which adds about five minutes of generation. Ratios against the bare-Falcon
ceiling measured before and after the cases, as in the api benchmark."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import psycopg

from benchmarks.api import CONNECTIONS, SECONDS, WORKERS, against_ceiling, bare_falcon, load, serving
from benchmarks.harness import print_table, save, scratch_database, timed
from tests.support.processes import environment

SCALE = os.environ.get("BENCH_SCALE", "") == "1"
ROWS = int(os.environ.get("BENCH_HISTORY_ROWS", "20000000" if SCALE else "2000000"))
PAIRS = 20
MINUTES = ROWS // PAIRS  # one bar a minute for each pair

FILL = [
    "INSERT INTO etl_runs (trigger, status, started_at, finished_at) VALUES ('cli', 'success', now(), now())",
    "INSERT INTO assets (symbol, name) SELECT 'P' || p, 'Pair ' || p FROM generate_series(1, %(pairs)s) p",
    """
DO $$
DECLARE year integer;
BEGIN
    FOR year IN 2020 .. 2030 LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS market_history_y%%s PARTITION OF market_history FOR VALUES FROM (%%L) TO (%%L)',
                       year, make_timestamptz(year, 1, 1, 0, 0, 0, 'UTC'), make_timestamptz(year + 1, 1, 1, 0, 0, 0, 'UTC'));
    END LOOP;
END $$""",
    # one INSERT per pair, as files load: each statement's bars are folded into the hourly and
    # daily candles by the trigger (migration 0011)
    """
DO $$
DECLARE pair bigint;
BEGIN
    FOR pair IN SELECT id FROM assets ORDER BY id LOOP
        INSERT INTO market_history (asset_id, source, observed_at, price_usd, open_usd, high_usd, low_usd,
                                    volume_24h_usd, run_id, bar_seconds)
        SELECT pair, 'csv:klines', timestamptz '2024-01-01' + m * interval '1 minute',
               30000 + (m % 7919) / 3.0, 30000 + (m % 7919) / 3.0 - 1, 30000 + (m % 7919) / 3.0 + 5,
               30000 + (m % 7919) / 3.0 - 5, 1000 + m % 97, 1, 60
        FROM generate_series(0, MINUTES - 1) m;
    END LOOP;
END $$""",
]


def fill(url: str) -> None:
    with psycopg.connect(url) as connection:
        *prepared, bars = FILL
        for statement in prepared:
            connection.execute(statement, {"pairs": PAIRS})
        # a DO block takes no parameters: the count is this module's own integer
        connection.execute(bars.replace("MINUTES", str(int(MINUTES))).encode())
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE market_history")


def main() -> list[dict[str, Any]]:
    with scratch_database() as url:
        with timed() as generation:
            fill(url)
        print(f"history: {ROWS:,} rows generated and analyzed in {generation['seconds']:.0f} s")
        with psycopg.connect(url) as connection:
            found = connection.execute(
                "SELECT min(id), (SELECT max(observed_at) FROM market_history) FROM assets"
            ).fetchone()
        assert found is not None
        asset, last = found
        end = last + timedelta(minutes=1)
        spans = {
            "daily over a year": ("1d", timedelta(days=365)),
            "hourly over a month": ("1h", timedelta(days=30)),
            "5-minute over a day": ("5m", timedelta(days=1)),
        }
        env = environment(DATABASE_URL=url)
        before = bare_falcon(env)
        results: dict[str, dict[str, Any]] = {}
        with serving("entrypoints.wsgi:create()", env) as api:
            for case, (interval, span) in spans.items():
                start = (end - span).strftime("%Y-%m-%dT%H:%M:%SZ")
                stop = end.strftime("%Y-%m-%dT%H:%M:%SZ")
                path = f"/assets/{asset}/history?interval={interval}&start={start}&end={stop}"
                with psycopg.connect(url) as connection:
                    read = connection.execute(
                        "SELECT count(*) FROM market_history WHERE asset_id = %s AND observed_at >= %s "
                        "AND observed_at < %s",
                        (asset, end - span, end),
                    ).fetchone()
                results[case] = {"bars_read": read[0] if read else 0, **load(f"{api}{path}")}
        rows = against_ceiling(before, bare_falcon(env), results)
    print_table(
        f"history ({ROWS:,} market_history rows, {PAIRS} pairs of one-minute bars; gunicorn {WORKERS} gthread "
        f"workers, {CONNECTIONS} connections, {SECONDS:g} s a case)",
        rows,
    )
    save("history", rows)
    return rows


if __name__ == "__main__":
    main()
