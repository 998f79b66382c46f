-- Each source's run counts the bars it stored marked suspect (far off the other sources' prices
-- for their time, PLAUSIBLE_BAR_DEVIATION): a run's anomalies compare the count with earlier runs'.
-- depends: 0015.quarantine-replay

ALTER TABLE etl_run_sources ADD COLUMN suspect_bars bigint NOT NULL DEFAULT 0;
