-- A bar in market_history follows its record: when a record is updated (a corrected row of a
-- file read again, a provider's revised history), its bar takes the new figures, and the hourly
-- and daily candles holding it are folded again from their bars.
-- depends: 0020.raw-csv-batches
--
-- Until now a bar kept the figures it was first stored with (`ON CONFLICT DO NOTHING`) while
-- `/data` showed the record's update: `/assets/{id}/history` and `/data` disagreed about the same
-- bar. The loader now updates the bar of each record its upsert updated (adapters/postgres/
-- records.py, UPSERT_UNIFIED); this statement trigger keeps the candles true for any update of
-- market_history, as market_candles_fold does for inserts: the candle of every (asset, length,
-- bucket, source) an updated bar was or is in is folded again from the bars stored (and dropped
-- when it folds none any more).

CREATE FUNCTION market_candles_refold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;  -- the loader's update of a batch's bars, none of which changed
    END IF;
    WITH touched AS (  -- every candle an updated bar was or is in
        SELECT DISTINCT r.asset_id, l.seconds,
               date_bin(make_interval(secs => l.seconds), r.observed_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
               r.source
        FROM (SELECT asset_id, source, observed_at, bar_seconds FROM old_rows
              UNION ALL
              SELECT asset_id, source, observed_at, bar_seconds FROM new_rows) AS r
        CROSS JOIN (VALUES (3600), (86400)) AS l (seconds)
        WHERE r.bar_seconds IS NULL OR r.bar_seconds < l.seconds
    ), folded AS (
        SELECT t.asset_id, t.seconds, t.bucket, t.source,
               min(h.observed_at) AS open_at, (array_agg(coalesce(h.open_usd, h.price_usd) ORDER BY h.observed_at))[1] AS open,
               max(coalesce(h.high_usd, h.price_usd)) AS high, min(coalesce(h.low_usd, h.price_usd)) AS low,
               max(h.observed_at) AS close_at, (array_agg(h.price_usd ORDER BY h.observed_at DESC))[1] AS close,
               count(*) AS bars
        FROM touched t
        JOIN market_history h
          ON h.asset_id = t.asset_id AND h.source = t.source
         AND h.observed_at >= t.bucket AND h.observed_at < t.bucket + make_interval(secs => t.seconds)
         AND (h.bar_seconds IS NULL OR h.bar_seconds < t.seconds)
        GROUP BY 1, 2, 3, 4
    ), emptied AS (  -- a candle none of whose bars it folds is left (a bar made long)
        DELETE FROM market_candles c USING touched t
        WHERE (c.asset_id, c.seconds, c.bucket, c.source) = (t.asset_id, t.seconds, t.bucket, t.source)
          AND NOT EXISTS (
              SELECT 1 FROM folded f
              WHERE (f.asset_id, f.seconds, f.bucket, f.source) = (t.asset_id, t.seconds, t.bucket, t.source)
          )
    )
    INSERT INTO market_candles AS c (asset_id, seconds, bucket, source, open_at, open, high, low, close_at, close, bars)
    SELECT * FROM folded
    ON CONFLICT (asset_id, seconds, bucket, source) DO UPDATE SET
        open_at = EXCLUDED.open_at, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
        close_at = EXCLUDED.close_at, close = EXCLUDED.close, bars = EXCLUDED.bars;
    RETURN NULL;
END $$;

CREATE TRIGGER market_candles_refold AFTER UPDATE ON market_history
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market_candles_refold();
