ALTER TABLE etl_run_sources DROP COLUMN drift_findings, DROP COLUMN freshness_seconds;
