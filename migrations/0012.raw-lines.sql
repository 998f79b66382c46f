-- A CSV row is kept as the line it was read from, and where in the file that line starts.
-- depends: 0011.history-candles
--
-- Until now a CSV row's raw payload was its cells re-encoded as jsonb under the header's names.
-- From now on a row is kept as received: `line` (its text, without the line break; a quoted cell
-- may make it span several lines) and `line_offset` (the byte offset in the file where it
-- starts), and `payload` stays empty for it. The checksum is still taken over the cells by name,
-- so a row keeps its identity across this change. An oversized row (over CSV_MAX_RECORD_BYTES) is
-- still kept as its payload of cut cells. The columns exist on every raw table so one statement
-- stores any source's raw rows; only CSV rows fill them. Rows stored before keep their payload.

ALTER TABLE raw_csv ADD COLUMN line text, ADD COLUMN line_offset bigint, ALTER COLUMN payload DROP NOT NULL,
    ADD CONSTRAINT raw_csv_kept CHECK (payload IS NOT NULL OR line IS NOT NULL);
ALTER TABLE raw_rss ADD COLUMN line text, ADD COLUMN line_offset bigint, ALTER COLUMN payload DROP NOT NULL,
    ADD CONSTRAINT raw_rss_kept CHECK (payload IS NOT NULL OR line IS NOT NULL);
ALTER TABLE raw_coingecko ADD COLUMN line text, ADD COLUMN line_offset bigint, ALTER COLUMN payload DROP NOT NULL,
    ADD CONSTRAINT raw_coingecko_kept CHECK (payload IS NOT NULL OR line IS NOT NULL);
ALTER TABLE raw_coinpaprika ADD COLUMN line text, ADD COLUMN line_offset bigint, ALTER COLUMN payload DROP NOT NULL,
    ADD CONSTRAINT raw_coinpaprika_kept CHECK (payload IS NOT NULL OR line IS NOT NULL);
