"""history: `/assets/{id}/history` over a large history (one-minute bars for twenty pairs, generated
in SQL as the records they are in the migrated `unified_data`, whose bars `market_history` shows),
served by gunicorn with the production config and loaded by 8 connections: daily candles over a
year, hourly over a month, 5-minute over a day. 2,000,000 bars by default; the issue's 20,000,000
(two years of minute bars for twenty pairs) with BENCH_SCALE=1, which adds about thirteen minutes of
generation. Ratios against the bare-Falcon ceiling measured before and after the cases, as in the
api benchmark."""

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
    # one INSERT per pair, as files load: each statement's bars are folded into the hourly and
    # daily candles by the trigger (migrations 0011, 0022)
    """
DO $$
DECLARE pair bigint;
BEGIN
    FOR pair IN SELECT id FROM assets ORDER BY id LOOP
        INSERT INTO unified_data (source_type, source, source_record_id, kind, title, symbol, asset_name,
                                  asset_id, observed_at, published_at, quote_currency, price, price_usd,
                                  open_usd, high_usd, low_usd, volume_24h_usd, bar_seconds, raw_id,
                                  first_run_id, last_run_id, checksum)
        SELECT 'csv', 'csv:klines', 'P' || pair || '@' || m, 'market', 'Pair ' || pair || ' (P' || pair || ')',
               'P' || pair, 'Pair ' || pair, pair, t, t, 'USD', c, c, c - 1, c + 5, c - 5, 1000 + m % 97, 60,
               m, 1, 1, 'c' || m
        FROM generate_series(0, MINUTES - 1) m,
             LATERAL (SELECT timestamptz '2024-01-01' + m * interval '1 minute' AS t, 30000 + (m % 7919) / 3.0 AS c) v;
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
        connection.execute("VACUUM ANALYZE unified_data")
        connection.execute("VACUUM ANALYZE market_candles")


def main() -> list[dict[str, Any]]:
    with scratch_database() as url:
        with timed() as generation:
            fill(url)
        print(f"history: {ROWS:,} rows generated and analyzed in {generation['seconds']:.0f} s")
        with psycopg.connect(url) as connection:
            found = connection.execute(
                "SELECT min(id), (SELECT max(observed_at) FROM unified_data) FROM assets"
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
        f"history ({ROWS:,} bars, {PAIRS} pairs of one-minute bars; gunicorn {WORKERS} gthread "
        f"workers, {CONNECTIONS} connections, {SECONDS:g} s a case)",
        rows,
    )
    save("history", rows)
    return rows


if __name__ == "__main__":
    main()
