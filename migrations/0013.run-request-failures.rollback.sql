DROP INDEX IF EXISTS run_requests_running_idx;
UPDATE run_requests SET status = 'done' WHERE status = 'failed';
ALTER TABLE run_requests DROP COLUMN IF EXISTS error;
ALTER TABLE run_requests DROP CONSTRAINT run_requests_status_check;
ALTER TABLE run_requests ADD CONSTRAINT run_requests_status_check CHECK (status IN ('queued', 'running', 'done'));
