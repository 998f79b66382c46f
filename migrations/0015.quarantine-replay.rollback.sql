ALTER TABLE run_requests DROP COLUMN IF EXISTS replay_reason;
ALTER TABLE run_requests DROP COLUMN IF EXISTS replay;
UPDATE etl_runs SET trigger = 'manual' WHERE trigger = 'replay';
ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_trigger_check;
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_trigger_check CHECK (trigger IN ('schedule', 'manual', 'cli'));
