-- Provider answers by HTTP status, per run and source (429s, 5xx, 402s... as well as 200s).
-- depends: 0004.run-observations

CREATE TABLE provider_responses (
    run_id    bigint NOT NULL REFERENCES etl_runs (id) ON DELETE CASCADE,
    source    text   NOT NULL,
    status    text   NOT NULL,
    responses bigint NOT NULL,
    PRIMARY KEY (run_id, source, status)
);
