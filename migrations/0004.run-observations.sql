-- What each run of a snapshot (API) source saw: one row per record, with its price, so two runs
-- can be compared by data (assets added and vanished, price moves), not only by counters.
-- Only the last runs of each source are kept (see RUN_OBSERVATIONS_KEPT).
-- depends: 0003.run-requests

CREATE TABLE run_observations (
    run_id           bigint  NOT NULL REFERENCES etl_runs (id) ON DELETE CASCADE,
    source           text    NOT NULL,
    source_record_id text    NOT NULL,
    price_usd        numeric,
    symbol           text,
    rank             integer,
    asset_id         bigint,
    PRIMARY KEY (source, run_id, source_record_id)
);
