"""History pages rendered by PostgreSQL: the candles of a page as the API's JSON array, built by
`json_agg` in the same statement that reads them, so a page of hundreds of candles costs Python
one string (no Decimal, datetime or dict per value). The shape is `entrypoints.api.render.candle`'s,
value for value (an integration test holds the two equal): moments as ISO 8601 in UTC with an
explicit `+00:00`, money as the stored numeric's own text, the asset's symbol beside its id."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from psycopg import sql

from adapters.postgres.assets import history_statement
from adapters.postgres.pooling import Lender, reading, retried_once
from application.ports import RenderedHistory
from domain.assets import HistoryQuery

# the first `limit + 1` candles; kept: those before the last one's bucket when there are more
# than `limit` (a page never splits a bucket), and that bucket is where the next page starts
PAGE_JSON = """
WITH candles AS (
    SELECT * FROM ({history}) AS c (bucket, asset_id, series, open, high, low, close, observations, flag, deviation)
), edge AS MATERIALIZED (  -- once: inlined, the planner re-counted it per candle
    SELECT CASE WHEN count(*) > %(page)s THEN max(bucket) END AS next FROM candles
)
SELECT coalesce(
           json_agg(
               json_build_object(
                   'bucket', to_char(c.bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00',
                   'asset_id', c.asset_id, 'symbol', a.symbol, 'source', c.series,
                   'open', c.open::text, 'high', c.high::text, 'low', c.low::text, 'close', c.close::text,
                   'observations', c.observations, 'flag', c.flag, 'deviation_pct', c.deviation::text
               ) ORDER BY c.bucket, c.asset_id, c.series
           ) FILTER (WHERE e.next IS NULL OR c.bucket < e.next),
           '[]'
       )::text,
       e.next,
       count(*) FILTER (WHERE e.next IS NULL OR c.bucket < e.next)
FROM candles c CROSS JOIN edge e JOIN assets a ON a.id = c.asset_id
GROUP BY e.next
"""


class PostgresRenderedHistory:
    def __init__(self, pool: Lender) -> None:
        self._pool = pool

    @retried_once
    def page_json(self, asset_ids: Sequence[int], query: HistoryQuery) -> RenderedHistory | None:
        assert query.limit is not None, "a rendered page has a size"
        statement, params = history_statement(asset_ids, attrs.evolve(query, limit=query.limit + 1))
        page = sql.SQL(PAGE_JSON).format(history=statement)
        with reading(self._pool) as connection:
            row = connection.execute(page, {**params, "page": query.limit}).fetchone()
        if row is None:  # no candle at all
            return RenderedHistory(b"[]", None)
        text, next_start, kept = row
        if kept == 0 and next_start is not None:
            return None  # one bucket holds more than a page: the caller pages it whole
        return RenderedHistory(text.encode("utf-8"), next_start)
