-- The bars written twice again: market_history a table of its own (partitioned by year, as 0010
-- made it), filled with the bars of the records and the snapshot observations, its candles kept by
-- its own triggers (0011, 0021).
DROP TRIGGER market_candles_fold ON unified_data;
DROP TRIGGER market_candles_refold ON unified_data;
DROP TRIGGER market_candles_refold_deleted ON unified_data;
DROP TRIGGER market_candles_fold ON market_snapshots;
DROP TRIGGER market_candles_refold ON market_snapshots;
DROP TRIGGER market_candles_refold_deleted ON market_snapshots;
DROP FUNCTION market_candles_fold_records();
DROP FUNCTION market_candles_fold_snapshots();
DROP FUNCTION market_candles_refold_updated();
DROP FUNCTION market_candles_refold_deleted();
DROP FUNCTION market_candles_add(bigint[], text[], timestamptz[], integer[], numeric[], numeric[], numeric[], numeric[]);
DROP FUNCTION market_candles_refold(bigint[], text[], timestamptz[], integer[]);

ALTER VIEW market_history RENAME TO market_history_of_records;
CREATE TABLE market_history (
    asset_id       bigint      NOT NULL REFERENCES assets (id),
    source         text        NOT NULL,
    observed_at    timestamptz NOT NULL,
    price_usd      numeric     NOT NULL,
    market_cap_usd numeric,
    volume_24h_usd numeric,
    run_id         bigint      NOT NULL,
    open_usd       numeric,
    high_usd       numeric,
    low_usd        numeric,
    bar_seconds    integer,
    PRIMARY KEY (asset_id, source, observed_at)
) PARTITION BY RANGE (observed_at);
DO $$
DECLARE
    year integer;
BEGIN
    FOR year IN
        SELECT DISTINCT extract(year FROM observed_at AT TIME ZONE 'UTC')::integer FROM market_history_of_records
    LOOP
        EXECUTE format(
            'CREATE TABLE market_history_y%s PARTITION OF market_history FOR VALUES FROM (%L) TO (%L)',
            year, make_timestamptz(year, 1, 1, 0, 0, 0, 'UTC'), make_timestamptz(year + 1, 1, 1, 0, 0, 0, 'UTC')
        );
    END LOOP;
END $$;
INSERT INTO market_history SELECT asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd,
    run_id, open_usd, high_usd, low_usd, bar_seconds FROM market_history_of_records;
DROP VIEW market_history_of_records;
DROP TABLE market_snapshots;
CREATE INDEX market_history_long_bars_idx ON market_history (asset_id, observed_at) WHERE bar_seconds >= 3600;
DROP INDEX unified_data_bars_idx;
DROP INDEX unified_data_long_bars_idx;

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
