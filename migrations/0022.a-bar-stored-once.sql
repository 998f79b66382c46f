-- A bar stored once: a bar that is a record of its own is read from the record itself.
-- depends: 0021.history-follows-its-record
--
-- Until now every bar was written twice: a row of `unified_data` (what `/data` serves) and a row
-- of `market_history` (what `/assets/{id}/history` reads), each with its indexes, kept in step by
-- the loader (0021). Now `market_history` is a view of two kinds of bars:
--
-- * A bar of a file, of a provider's history or of Binance's klines (a source named
--   `<kind>:<name>`: `csv:prices`, `coingecko:1d`) is a record of its own: it is stored once, as
--   that record, and read through two partial indexes of `unified_data`.
-- * A provider's snapshot (a source named by its kind alone: `coingecko`, `binance`) is one record
--   per coin, updated by every run, while the history keeps every run's price: those observations
--   stay rows of their own, in `market_snapshots` (what `market_history` held of them).
--
-- A record is a bar when it names an asset, a time and a USD price. Two records of one source may
-- name the same bar (BTC/USD and BTC/USDT rows of a file at the same minute): the bar is the one
-- stored first (the lowest id), as the history's key `(asset_id, source, observed_at)` kept it
-- before, so the view and the candles show one bar per (asset, source, time).
--
-- The hourly and daily candles (0011) are kept by statement triggers on both tables: rows inserted
-- fold into their candles (of a record's bars, each the first of its key), and rows updated or
-- deleted fold the candles they were or are in again from the bars stored. A record's bar always
-- shows the record's figures, whichever of two records of one bar is updated.
--
-- The history is no longer partitioned by year: `HISTORY_RETENTION_DAYS` deletes the bars observed
-- before its cutoff (a record's bar with its record; the triggers fold their candles again).
-- Existing data: every bar of a record's is its record now (a bar stored before 0021 with figures
-- its record no longer has shows the record's; a bar whose record was gone is gone), every
-- snapshot observation is kept, and the candles are folded again from the bars.

CREATE INDEX unified_data_bars_idx ON unified_data (asset_id, source, observed_at, id)
    WHERE asset_id IS NOT NULL AND observed_at IS NOT NULL AND price_usd IS NOT NULL AND strpos(source, ':') > 0;
-- the bars no candle folds (as long as an hour or longer), by asset and time
CREATE INDEX unified_data_long_bars_idx ON unified_data (asset_id, observed_at)
    WHERE asset_id IS NOT NULL AND observed_at IS NOT NULL AND price_usd IS NOT NULL AND strpos(source, ':') > 0
      AND bar_seconds >= 3600;

CREATE TABLE market_snapshots (
    asset_id       bigint      NOT NULL REFERENCES assets (id),
    source         text        NOT NULL CHECK (strpos(source, ':') = 0),
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
);
CREATE INDEX market_snapshots_long_bars_idx ON market_snapshots (asset_id, observed_at) WHERE bar_seconds >= 3600;
-- the retention's range (observations arrive in time order: a block range index stays small)
CREATE INDEX market_snapshots_observed_idx ON market_snapshots USING brin (observed_at);
INSERT INTO market_snapshots
SELECT asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd, run_id, open_usd, high_usd,
       low_usd, bar_seconds
FROM market_history WHERE strpos(source, ':') = 0;

DROP TABLE market_history;  -- its yearly partitions, triggers and indexes with it
DROP FUNCTION market_candles_fold();
DROP FUNCTION market_candles_refold();

-- each (asset, source, time) once: of the records, the first stored (`record_id` its row of
-- unified_data); a snapshot observation as it is
CREATE VIEW market_history AS
SELECT u.asset_id, u.source, u.observed_at, u.price_usd, u.market_cap_usd, u.volume_24h_usd,
       u.last_run_id AS run_id, u.open_usd, u.high_usd, u.low_usd, u.bar_seconds, u.id AS record_id
FROM unified_data u
WHERE u.asset_id IS NOT NULL AND u.observed_at IS NOT NULL AND u.price_usd IS NOT NULL AND strpos(u.source, ':') > 0
  AND NOT EXISTS (
      SELECT 1 FROM unified_data o
      WHERE o.asset_id = u.asset_id AND o.source = u.source AND o.observed_at = u.observed_at
        AND o.id < u.id AND o.price_usd IS NOT NULL AND strpos(o.source, ':') > 0
  )
UNION ALL
SELECT s.asset_id, s.source, s.observed_at, s.price_usd, s.market_cap_usd, s.volume_24h_usd,
       s.run_id, s.open_usd, s.high_usd, s.low_usd, s.bar_seconds, NULL::bigint
FROM market_snapshots s;

-- The candles of the buckets these bars were or are in, folded again from the bars stored (and
-- dropped when they fold none any more).
CREATE FUNCTION market_candles_refold(asset_ids bigint[], sources text[], moments timestamptz[], lengths integer[])
RETURNS void LANGUAGE sql AS $$
    WITH touched AS (
        SELECT DISTINCT k.asset_id, l.seconds,
               date_bin(make_interval(secs => l.seconds), k.observed_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
               k.source
        FROM unnest(asset_ids, sources, moments, lengths) AS k (asset_id, source, observed_at, bar_seconds)
        CROSS JOIN (VALUES (3600), (86400)) AS l (seconds)
        WHERE k.bar_seconds IS NULL OR k.bar_seconds < l.seconds
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
    ), emptied AS (
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
$$;

-- Bars inserted fold into their candles: `added` holds the new bars, each the first of its key.
-- One statement may also update or delete rows (`INSERT ... ON CONFLICT DO UPDATE`, MERGE), and
-- its update trigger may run first and fold the candles again from every bar stored, the inserted
-- ones too (PostgreSQL fires an upsert's UPDATE statement triggers before its INSERT ones). A
-- trigger that folded candles again says so (`kaspero.candles_refolded`, for the transaction); an
-- insert after it folds its bars' candles again too, from the bars stored, rather than adding its
-- bars to them a second time. Folding again is always right, only slower.
CREATE FUNCTION market_candles_add(asset_ids bigint[], sources text[], moments timestamptz[], lengths integer[],
                                   opens numeric[], highs numeric[], lows numeric[], closes numeric[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('kaspero.candles_refolded', true) = 'on' THEN
        PERFORM set_config('kaspero.candles_refolded', '', true);
        PERFORM market_candles_refold(asset_ids, sources, moments, lengths);
        RETURN;
    END IF;
    INSERT INTO market_candles AS c (asset_id, seconds, bucket, source, open_at, open, high, low,
                                     close_at, close, bars)
    SELECT n.asset_id, l.seconds,
           date_bin(make_interval(secs => l.seconds), n.observed_at, timestamptz '2000-01-01 00:00:00+00'),
           n.source,
           min(n.observed_at), (array_agg(coalesce(n.open_usd, n.price_usd) ORDER BY n.observed_at))[1],
           max(coalesce(n.high_usd, n.price_usd)), min(coalesce(n.low_usd, n.price_usd)),
           max(n.observed_at), (array_agg(n.price_usd ORDER BY n.observed_at DESC))[1], count(*)
    FROM unnest(asset_ids, sources, moments, lengths, opens, highs, lows, closes)
         AS n (asset_id, source, observed_at, bar_seconds, open_usd, high_usd, low_usd, price_usd)
    CROSS JOIN (VALUES (3600), (86400)) AS l (seconds)
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
END $$;

-- a record's rows inserted: the bars among them, each the first record of its key
CREATE FUNCTION market_candles_fold_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM market_candles_add(array_agg(n.asset_id), array_agg(n.source), array_agg(n.observed_at),
                               array_agg(n.bar_seconds), array_agg(n.open_usd), array_agg(n.high_usd),
                               array_agg(n.low_usd), array_agg(n.price_usd))
    FROM added_rows n
    WHERE n.asset_id IS NOT NULL AND n.observed_at IS NOT NULL AND n.price_usd IS NOT NULL
      AND strpos(n.source, ':') > 0
      AND (n.bar_seconds IS NULL OR n.bar_seconds < 86400)  -- a daily bar folds into no candle
      AND NOT EXISTS (
          SELECT 1 FROM unified_data o
          WHERE o.asset_id = n.asset_id AND o.source = n.source AND o.observed_at = n.observed_at
            AND o.id < n.id AND o.price_usd IS NOT NULL AND strpos(o.source, ':') > 0
      )
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

-- snapshot observations inserted (one per asset, source and time: the table's key)
CREATE FUNCTION market_candles_fold_snapshots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM market_candles_add(array_agg(n.asset_id), array_agg(n.source), array_agg(n.observed_at),
                               array_agg(n.bar_seconds), array_agg(n.open_usd), array_agg(n.high_usd),
                               array_agg(n.low_usd), array_agg(n.price_usd))
    FROM added_rows n
    WHERE n.bar_seconds IS NULL OR n.bar_seconds < 86400
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

-- Rows updated: the candles of every bar whose figures, asset, source or time changed are folded
-- again (a row whose bar's columns an update left alone is in both transition tables, and cancels
-- out). Of unified_data, the bars of records of their own count (the view tells which is the bar).
CREATE FUNCTION market_candles_refold_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM market_candles_refold(array_agg(k.asset_id), array_agg(k.source), array_agg(k.observed_at), array_agg(k.bar_seconds))
    FROM (
        WITH was AS MATERIALIZED (  -- of unified_data, a provider's snapshot records are not bars
            SELECT asset_id, source, observed_at, price_usd, open_usd, high_usd, low_usd, bar_seconds FROM old_rows
            WHERE TG_TABLE_NAME = 'market_snapshots' OR strpos(source, ':') > 0
        ), now AS MATERIALIZED (
            SELECT asset_id, source, observed_at, price_usd, open_usd, high_usd, low_usd, bar_seconds FROM new_rows
            WHERE TG_TABLE_NAME = 'market_snapshots' OR strpos(source, ':') > 0
        )
        (SELECT * FROM was EXCEPT ALL SELECT * FROM now)
        UNION ALL
        (SELECT * FROM now EXCEPT ALL SELECT * FROM was)
    ) AS k
    WHERE k.asset_id IS NOT NULL AND k.observed_at IS NOT NULL AND k.price_usd IS NOT NULL
    HAVING count(*) > 0;
    IF FOUND THEN
        PERFORM set_config('kaspero.candles_refolded', 'on', true);
    END IF;
    RETURN NULL;
END $$;

-- Rows deleted (the retention, an operator's correction): the candles their bars were in.
CREATE FUNCTION market_candles_refold_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM market_candles_refold(array_agg(o.asset_id), array_agg(o.source), array_agg(o.observed_at), array_agg(o.bar_seconds))
    FROM old_rows o
    WHERE o.asset_id IS NOT NULL AND o.observed_at IS NOT NULL AND o.price_usd IS NOT NULL
      AND (TG_TABLE_NAME = 'market_snapshots' OR strpos(o.source, ':') > 0)
    HAVING count(*) > 0;
    IF FOUND THEN
        PERFORM set_config('kaspero.candles_refolded', 'on', true);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER market_candles_fold AFTER INSERT ON unified_data
    REFERENCING NEW TABLE AS added_rows FOR EACH STATEMENT EXECUTE FUNCTION market_candles_fold_records();
CREATE TRIGGER market_candles_refold AFTER UPDATE ON unified_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market_candles_refold_updated();
CREATE TRIGGER market_candles_refold_deleted AFTER DELETE ON unified_data
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION market_candles_refold_deleted();
CREATE TRIGGER market_candles_fold AFTER INSERT ON market_snapshots
    REFERENCING NEW TABLE AS added_rows FOR EACH STATEMENT EXECUTE FUNCTION market_candles_fold_snapshots();
CREATE TRIGGER market_candles_refold AFTER UPDATE ON market_snapshots
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market_candles_refold_updated();
CREATE TRIGGER market_candles_refold_deleted AFTER DELETE ON market_snapshots
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION market_candles_refold_deleted();

-- the candles of the bars stored, folded again
TRUNCATE market_candles;
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
