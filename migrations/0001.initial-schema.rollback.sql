-- Drops everything 0001 created.
DROP TABLE IF EXISTS schema_drifts, checkpoints, quarantine, unified_data,
    raw_coinpaprika, raw_coingecko, raw_csv, raw_rss, etl_run_sources, etl_runs;
