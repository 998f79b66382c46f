-- Runs asked for through the API (POST /runs), queued for the schedulers, which claim them with
-- SELECT ... FOR UPDATE SKIP LOCKED so each request runs exactly once across replicas.
-- depends: 0002.run-freshness-and-drift-counts

CREATE TABLE run_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sources      text[]      NOT NULL DEFAULT '{}',
    status       text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done')),
    requested_at timestamptz NOT NULL,
    claimed_at   timestamptz,
    finished_at  timestamptz,
    run_id       bigint      REFERENCES etl_runs (id)
);
CREATE INDEX run_requests_queued_idx ON run_requests (id) WHERE status = 'queued';

-- When each source kind was last started by a scheduler: replicas agree on what is due.
CREATE TABLE schedule_marks (
    kind            text PRIMARY KEY,
    last_started_at timestamptz NOT NULL
);
