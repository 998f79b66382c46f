-- Bulk rows name their run without a foreign key to it.
-- depends: 0007.canonical-assets
--
-- Every raw, unified and history row carries the id of the run that wrote it (lineage), set by
-- the loader from the run it has just recorded itself; runs are never deleted. The foreign
-- keys checked that id row by row, one trigger call per constraint per row: four on each CSV
-- row, about a fifth of the database's time on a first load. Quarantine (a trickle) and
-- run_observations (deleted with their run) keep theirs, as do the asset references.

ALTER TABLE raw_coinpaprika DROP CONSTRAINT raw_coinpaprika_run_id_fkey;
ALTER TABLE raw_coingecko DROP CONSTRAINT raw_coingecko_run_id_fkey;
ALTER TABLE raw_csv DROP CONSTRAINT raw_csv_run_id_fkey;
ALTER TABLE raw_rss DROP CONSTRAINT raw_rss_run_id_fkey;
ALTER TABLE unified_data DROP CONSTRAINT unified_data_first_run_id_fkey;
ALTER TABLE unified_data DROP CONSTRAINT unified_data_last_run_id_fkey;
ALTER TABLE market_history DROP CONSTRAINT market_history_run_id_fkey;
