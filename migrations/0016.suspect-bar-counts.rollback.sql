ALTER TABLE etl_run_sources DROP COLUMN IF EXISTS suspect_bars;
