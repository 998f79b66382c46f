DROP TABLE IF EXISTS provider_budgets;
DROP TABLE IF EXISTS backfill_windows;
DROP TABLE IF EXISTS backfill_jobs;
UPDATE etl_runs SET trigger = 'manual' WHERE trigger = 'backfill';
ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_trigger_check;
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_trigger_check CHECK (trigger IN ('schedule', 'manual', 'cli', 'replay'));
