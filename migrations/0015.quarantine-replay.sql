-- Quarantined records read again through the current rules (`kaspero quarantine replay`,
-- POST /quarantine/replay): runs of their own trigger, and queued requests that ask for one.
-- depends: 0014.history-partitions-ahead

ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_trigger_check;
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_trigger_check
    CHECK (trigger IN ('schedule', 'manual', 'cli', 'replay'));

-- a queued replay: the entries whose reason holds this text (NULL: every entry of its sources)
ALTER TABLE run_requests ADD COLUMN replay boolean NOT NULL DEFAULT false;
ALTER TABLE run_requests ADD COLUMN replay_reason text;
