-- Hourly and daily candles of market_history, kept by the database as rows arrive.
-- depends: 0010.history-partitions-lean-indexes
--
-- `/assets/{id}/history` by the hour or the day reads these instead of every bar: a year of
-- one-minute bars is 525,600 rows to fold but 365 daily candles. A candle holds what folding its
-- bars gives (the first bar's open and when, the highest high, the lowest low, the last bar's
-- close and when, how many bars), so candles of the same series combine exactly: an hour's
-- candles make its day, and new bars fold into a candle already stored.
--
-- A candle folds the bars shorter than it (snapshots, minute bars). A bar as long as the candle
-- or longer (a daily bar, for hourly and daily candles) is its own piece: the history query reads
-- it where it is, through a partial index of the long bars, and no candle repeats it. A file of
-- daily bars writes no candles at all.
--
-- A statement-level trigger folds the rows each INSERT or COPY into market_history actually
-- added (its transition table: a row skipped by ON CONFLICT DO NOTHING is not in it), so every
-- writer keeps the candles true, in the writer's own transaction. History rows are never updated
-- or deleted one by one; the retention drops whole yearly partitions and the candles of those
-- years with them (adapters/postgres/partitions.py). Buckets are aligned on 2000-01-01 00:00 UTC,
-- as the history query's buckets are, so every UTC year boundary is a bucket boundary.

CREATE TABLE market_candles (
    asset_id bigint      NOT NULL REFERENCES assets (id),
    seconds  integer     NOT NULL CHECK (seconds IN (3600, 86400)),
    bucket   timestamptz NOT NULL,
    source   text        NOT NULL,
    open_at  timestamptz NOT NULL,
    open     numeric     NOT NULL,
    high     numeric     NOT NULL,
    low      numeric     NOT NULL,
    close_at timestamptz NOT NULL,
    close    numeric     NOT NULL,
    bars     bigint      NOT NULL,
    -- one asset's candles of one length over a range of buckets, every source or one
    PRIMARY KEY (asset_id, seconds, bucket, source)
);

CREATE FUNCTION market_candles_fold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO market_candles AS c (asset_id, seconds, bucket, source, open_at, open, high, low,
                                     close_at, close, bars)
    SELECT n.asset_id, l.seconds,
           date_bin(make_interval(secs => l.seconds), n.observed_at, timestamptz '2000-01-01 00:00:00+00'),
           n.source,
           min(n.observed_at), (array_agg(coalesce(n.open_usd, n.price_usd) ORDER BY n.observed_at))[1],
           max(coalesce(n.high_usd, n.price_usd)), min(coalesce(n.low_usd, n.price_usd)),
           max(n.observed_at), (array_agg(n.price_usd ORDER BY n.observed_at DESC))[1], count(*)
    FROM added_rows n CROSS JOIN (VALUES (3600), (86400)) AS l (seconds)
    WHERE n.bar_seconds IS NULL OR n.bar_seconds < l.seconds
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (asset_id, seconds, bucket, source) DO UPDATE SET
        open = CASE WHEN EXCLUDED.open_at < c.open_at THEN EXCLUDED.open ELSE c.open END,
        open_at = least(c.open_at, EXCLUDED.open_at),
        high = greatest(c.high, EXCLUDED.high),
        low = least(c.low, EXCLUDED.low),
        close = CASE WHEN EXCLUDED.close_at > c.close_at THEN EXCLUDED.close ELSE c.close END,
        close_at = greatest(c.close_at, EXCLUDED.close_at),
        bars = c.bars + EXCLUDED.bars;
    RETURN NULL;
END $$;

CREATE TRIGGER market_candles_fold AFTER INSERT ON market_history
    REFERENCING NEW TABLE AS added_rows FOR EACH STATEMENT EXECUTE FUNCTION market_candles_fold();

-- the candles of the history already stored
INSERT INTO market_candles (asset_id, seconds, bucket, source, open_at, open, high, low, close_at, close, bars)
SELECT h.asset_id, l.seconds,
       date_bin(make_interval(secs => l.seconds), h.observed_at, timestamptz '2000-01-01 00:00:00+00'),
       h.source,
       min(h.observed_at), (array_agg(coalesce(h.open_usd, h.price_usd) ORDER BY h.observed_at))[1],
       max(coalesce(h.high_usd, h.price_usd)), min(coalesce(h.low_usd, h.price_usd)),
       max(h.observed_at), (array_agg(h.price_usd ORDER BY h.observed_at DESC))[1], count(*)
FROM market_history h CROSS JOIN (VALUES (3600), (86400)) AS l (seconds)
WHERE h.bar_seconds IS NULL OR h.bar_seconds < l.seconds
GROUP BY 1, 2, 3, 4;

-- the bars no candle folds, by asset and time
CREATE INDEX market_history_long_bars_idx ON market_history (asset_id, observed_at) WHERE bar_seconds >= 3600;
