-- History from the providers: backfill jobs split into windows any process may take, one rate
-- budget per provider shared by every process, and runs of their own trigger.
-- depends: 0016.suspect-bar-counts
--
-- A window is one request's worth of one asset's history from one provider at one interval. It
-- is taken with `FOR UPDATE SKIP LOCKED` by whichever worker (a scheduler replica, a `kaspero
-- backfill`) asks first, marked `running` with the run that took it, and settled in the same
-- process once its bars are committed: `done` (bars stored), `empty` (the provider confirmed it
-- holds nothing there: never asked again), `refused` (the plan does not reach it; the message
-- names the limit) or `failed` (it kept failing). A `running` window whose run is no longer
-- running (its process was killed: `close_abandoned_runs` closed the run) is taken again; the
-- bars it may have stored are keyed, so they are stored once.

ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_trigger_check;
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_trigger_check
    CHECK (trigger IN ('schedule', 'manual', 'cli', 'replay', 'backfill'));

CREATE TABLE backfill_jobs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbols     text[]      NOT NULL,
    sources     text[]      NOT NULL,
    interval    text        NOT NULL CHECK (interval IN ('5m', '1h', '1d')),
    since       timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    gaps_only   boolean     NOT NULL DEFAULT false,
    -- what could not be planned at all (an asset no provider id is known for), one per line
    problems    text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    CHECK (until > since)
);

CREATE TABLE backfill_windows (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      bigint      NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
    asset_id    bigint      NOT NULL REFERENCES assets (id),
    kind        text        NOT NULL,  -- the provider: coingecko, coinpaprika, ...
    provider_id text        NOT NULL,  -- how the provider names the asset (bitcoin, btc-bitcoin)
    interval    text        NOT NULL CHECK (interval IN ('5m', '1h', '1d')),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,  -- exclusive
    state       text        NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'done', 'empty', 'refused', 'failed')),
    run_id      bigint      REFERENCES etl_runs (id),
    attempts    integer     NOT NULL DEFAULT 0,
    bars        integer     NOT NULL DEFAULT 0,
    requests    integer     NOT NULL DEFAULT 0,
    error       text,
    settled_at  timestamptz,
    CHECK (ends_at > starts_at)
);
-- the queue: the next pending window of a source, oldest job first
CREATE INDEX backfill_windows_pending_idx ON backfill_windows (kind, interval, job_id, id)
    WHERE state IN ('pending', 'running');
CREATE INDEX backfill_windows_job_idx ON backfill_windows (job_id, state);
-- confirmed-empty ranges of an asset's history, read when a job is planned
CREATE INDEX backfill_windows_empty_idx ON backfill_windows (asset_id, kind, interval, starts_at)
    WHERE state = 'empty';

-- One token bucket per provider for the whole deployment: every process takes its requests'
-- tokens here (one short UPDATE a request), and a provider's `Retry-After` holds them all.
CREATE TABLE provider_budgets (
    provider      text             PRIMARY KEY,
    tokens        double precision NOT NULL,
    refilled_at   timestamptz      NOT NULL,
    blocked_until timestamptz
);
