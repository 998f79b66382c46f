"""Which buckets of an asset's history hold data, per source, as runs of consecutive buckets
(gaps and islands, in one statement). Hourly and daily coverage reads the stored candles (one
row a bucket) and the bars as long or longer than a candle (a daily bar spans 24 hourly
buckets); 5-minute coverage reads the bars themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import sql

from adapters.postgres.assets import LONG_BARS, STORED_CANDLES
from adapters.postgres.pooling import Lender, reading, retried_once
from domain.assets import BUCKET_ORIGIN, Interval, bucket_of
from domain.coverage import Span

# every bucket a bar spans: its own, and the next ones while it lasts (a snapshot: its own)
SPANNED = """
SELECT m.source, b.bucket FROM market_history m
CROSS JOIN LATERAL generate_series(
    date_bin(%(step)s, m.observed_at, %(origin)s),
    m.observed_at + make_interval(secs => greatest(coalesce(m.bar_seconds, 0), 1)) - interval '1 microsecond',
    %(step)s
) AS b (bucket)
WHERE {where}
"""
CANDLE_BUCKETS = "SELECT source, bucket FROM market_candles WHERE {where}"
ISLANDS = """
WITH buckets AS ({buckets}),
islands AS (
    SELECT source, bucket, bucket - row_number() OVER (PARTITION BY source ORDER BY bucket) * %(step)s AS island
    FROM buckets WHERE {clip}
)
SELECT source, min(bucket), max(bucket) + %(step)s, count(*) FROM islands
GROUP BY source, island ORDER BY source, 2
"""


class PostgresCoverage:
    def __init__(self, pool: Lender) -> None:
        self._pool = pool

    @retried_once
    def covered(
        self,
        asset_id: int,
        interval: Interval,
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, list[Span]]:
        step = interval.step
        seconds = int(step.total_seconds())
        params: dict[str, Any] = {"id": asset_id, "step": step, "origin": BUCKET_ORIGIN, "source": source}
        common = ["m.asset_id = %(id)s"] + (["m.source = %(source)s"] if source else [])
        clip = ["TRUE"]
        if start is not None:
            params["first"] = bucket_of(start, step)
            clip.append("bucket >= %(first)s")
        if end is not None:
            params["last"] = bucket_of(end, step)
            clip.append("bucket <= %(last)s")
            common.append("m.observed_at <= %(end)s")
            params["end"] = end
        if start is not None:
            # a bar that started before the range may still span into it (a month's bar at most)
            common.append("m.observed_at > %(first)s - interval '31 days'")
        if seconds in STORED_CANDLES:
            candles = ["asset_id = %(id)s", "seconds = %(seconds)s"] + (
                ["source = %(source)s"] if source else []
            )
            candles += ["bucket >= %(first)s"] if start is not None else []
            candles += ["bucket <= %(last)s"] if end is not None else []
            params["seconds"] = seconds
            long_bars = [*common, "m." + LONG_BARS.format(seconds=seconds)]
            buckets = sql.SQL("{} UNION {}").format(
                sql.SQL(CANDLE_BUCKETS).format(where=sql.SQL(" AND ".join(candles))),
                sql.SQL(SPANNED).format(where=sql.SQL(" AND ".join(long_bars))),
            )
        else:
            buckets = sql.SQL("SELECT DISTINCT * FROM ({}) spanned").format(
                sql.SQL(SPANNED).format(where=sql.SQL(" AND ".join(common)))
            )
        statement = sql.SQL(ISLANDS).format(buckets=buckets, clip=sql.SQL(" AND ".join(clip)))
        found: dict[str, list[Span]] = {}
        with reading(self._pool) as connection:
            for name, first, stop, count in connection.execute(statement, params):
                found.setdefault(name, []).append(Span(first, stop, int(count)))
        return found
