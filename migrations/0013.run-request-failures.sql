-- A queued run request whose scheduler died while running it is closed `failed` with the reason
-- by the next scheduler (it was left `running` for ever).
-- depends: 0012.raw-lines

ALTER TABLE run_requests DROP CONSTRAINT run_requests_status_check;
ALTER TABLE run_requests ADD CONSTRAINT run_requests_status_check
    CHECK (status IN ('queued', 'running', 'done', 'failed'));
ALTER TABLE run_requests ADD COLUMN error text;
CREATE INDEX run_requests_running_idx ON run_requests (claimed_at) WHERE status = 'running';
