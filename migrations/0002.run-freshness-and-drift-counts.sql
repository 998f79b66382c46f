-- Per-source run figures for drift findings and data freshness (age of the newest provider timestamp).
-- depends: 0001.initial-schema

ALTER TABLE etl_run_sources
    ADD COLUMN drift_findings    bigint NOT NULL DEFAULT 0,
    ADD COLUMN freshness_seconds double precision;
