-- Binance spot klines: the raw payloads of its snapshots and history windows, in a table shaped
-- as the other raw tables are today (0001, 0008, 0012).
-- depends: 0017.history-backfill

CREATE TABLE raw_binance (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text        NOT NULL,
    source_record_id text        NOT NULL,
    checksum         text        NOT NULL,
    payload          jsonb,
    fetched_at       timestamptz NOT NULL,
    run_id           bigint      NOT NULL,
    line             text,
    line_offset      bigint,
    CONSTRAINT raw_binance_content_key UNIQUE (source, source_record_id, checksum),
    CONSTRAINT raw_binance_kept CHECK (payload IS NOT NULL OR line IS NOT NULL)
);
