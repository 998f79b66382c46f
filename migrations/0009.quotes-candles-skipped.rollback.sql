DELETE FROM etl_run_sources WHERE status = 'skipped';
ALTER TABLE etl_run_sources DROP CONSTRAINT etl_run_sources_status_check;
ALTER TABLE etl_run_sources ADD CONSTRAINT etl_run_sources_status_check
    CHECK (status IN ('running', 'success', 'partial', 'failed'));
ALTER TABLE market_history DROP COLUMN open_usd, DROP COLUMN high_usd, DROP COLUMN low_usd, DROP COLUMN bar_seconds;
ALTER TABLE unified_data DROP COLUMN quote_currency, DROP COLUMN price, DROP COLUMN open_usd,
    DROP COLUMN high_usd, DROP COLUMN low_usd, DROP COLUMN bar_seconds;
