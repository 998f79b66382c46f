-- The whole first schema: runs, raw payloads per source, the unified table, quarantine,
-- checkpoints and schema drift findings.
-- depends:

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE etl_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger     text        NOT NULL CHECK (trigger IN ('schedule', 'manual', 'cli')),
    status      text        NOT NULL CHECK (status IN ('running', 'success', 'partial', 'failed')),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    error       text
);
CREATE INDEX etl_runs_started_at_idx ON etl_runs (started_at DESC);

CREATE TABLE etl_run_sources (
    run_id           bigint      NOT NULL REFERENCES etl_runs (id) ON DELETE CASCADE,
    source           text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('running', 'success', 'partial', 'failed')),
    fetched          bigint      NOT NULL DEFAULT 0,
    inserted         bigint      NOT NULL DEFAULT 0,
    updated          bigint      NOT NULL DEFAULT 0,
    unchanged        bigint      NOT NULL DEFAULT 0,
    quarantined      bigint      NOT NULL DEFAULT 0,
    http_requests    bigint      NOT NULL DEFAULT 0,
    retries          bigint      NOT NULL DEFAULT 0,
    rate_limit_waits bigint      NOT NULL DEFAULT 0,
    duration_ms      bigint      NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    error            text,
    PRIMARY KEY (run_id, source)
);
CREATE INDEX etl_run_sources_source_idx ON etl_run_sources (source, run_id DESC);

CREATE TABLE raw_coinpaprika (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text        NOT NULL,
    source_record_id text        NOT NULL,
    checksum         text        NOT NULL,
    payload          jsonb       NOT NULL,
    fetched_at       timestamptz NOT NULL,
    run_id           bigint      NOT NULL REFERENCES etl_runs (id),
    CONSTRAINT raw_coinpaprika_content_key UNIQUE (source, source_record_id, checksum)
);

CREATE TABLE raw_coingecko (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text        NOT NULL,
    source_record_id text        NOT NULL,
    checksum         text        NOT NULL,
    payload          jsonb       NOT NULL,
    fetched_at       timestamptz NOT NULL,
    run_id           bigint      NOT NULL REFERENCES etl_runs (id),
    CONSTRAINT raw_coingecko_content_key UNIQUE (source, source_record_id, checksum)
);

CREATE TABLE raw_csv (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text        NOT NULL,
    source_record_id text        NOT NULL,
    checksum         text        NOT NULL,
    payload          jsonb       NOT NULL,
    fetched_at       timestamptz NOT NULL,
    run_id           bigint      NOT NULL REFERENCES etl_runs (id),
    CONSTRAINT raw_csv_content_key UNIQUE (source, source_record_id, checksum)
);

CREATE TABLE raw_rss (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text        NOT NULL,
    source_record_id text        NOT NULL,
    checksum         text        NOT NULL,
    payload          jsonb       NOT NULL,
    fetched_at       timestamptz NOT NULL,
    run_id           bigint      NOT NULL REFERENCES etl_runs (id),
    CONSTRAINT raw_rss_content_key UNIQUE (source, source_record_id, checksum)
);

CREATE TABLE unified_data (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_type      text        NOT NULL CHECK (source_type IN ('api', 'csv', 'rss')),
    source           text        NOT NULL,
    source_record_id text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('market', 'article')),
    title            text,
    description      text,
    author           text,
    category         text,
    tags             text[]      NOT NULL DEFAULT '{}',
    url              text,
    published_at     timestamptz,
    symbol           text,
    asset_name       text,
    price_usd        numeric,
    market_cap_usd   numeric,
    volume_24h_usd   numeric,
    rank             integer,
    pct_change_24h   numeric,
    observed_at      timestamptz,
    extra            jsonb       NOT NULL DEFAULT '{}',
    -- lineage: raw_id points into the raw table of this row's source type (raw_csv for csv:*)
    raw_id           bigint      NOT NULL,
    first_run_id     bigint      NOT NULL REFERENCES etl_runs (id),
    last_run_id      bigint      NOT NULL REFERENCES etl_runs (id),
    checksum         text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT unified_data_source_record_key UNIQUE (source, source_record_id)
);
-- the default order of /data is published_at DESC NULLS LAST, id DESC: these indexes hold it, so
-- a page (offset or keyset) is a range scan, not a sort of everything that matches
CREATE INDEX unified_data_type_published_idx ON unified_data (source_type, published_at DESC NULLS LAST, id DESC);
CREATE INDEX unified_data_published_idx ON unified_data (published_at DESC NULLS LAST, id DESC);
CREATE INDEX unified_data_symbol_idx ON unified_data (symbol, published_at DESC NULLS LAST, id DESC);
CREATE INDEX unified_data_category_idx ON unified_data (category);
CREATE INDEX unified_data_author_idx ON unified_data (author);
CREATE INDEX unified_data_kind_idx ON unified_data (kind, published_at DESC NULLS LAST, id DESC);
CREATE INDEX unified_data_title_trgm_idx ON unified_data USING gin (title gin_trgm_ops);
CREATE INDEX unified_data_description_trgm_idx ON unified_data USING gin (description gin_trgm_ops);

CREATE TABLE quarantine (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text        NOT NULL,
    source_record_id text        NOT NULL,
    checksum         text        NOT NULL,
    reason           text        NOT NULL,
    payload          jsonb       NOT NULL,
    first_run_id     bigint      NOT NULL REFERENCES etl_runs (id),
    last_run_id      bigint      NOT NULL REFERENCES etl_runs (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT quarantine_content_key UNIQUE (source, source_record_id, checksum)
);
CREATE INDEX quarantine_source_idx ON quarantine (source, created_at DESC);

CREATE TABLE checkpoints (
    source     text PRIMARY KEY,
    cursor     jsonb       NOT NULL,
    run_id     bigint      NOT NULL REFERENCES etl_runs (id),
    updated_at timestamptz NOT NULL
);

CREATE TABLE schema_drifts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('added', 'removed', 'renamed', 'type_changed')),
    field        text        NOT NULL,
    candidate    text        NOT NULL DEFAULT '',
    confidence   numeric(4, 3) NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    auto_mapped  boolean     NOT NULL DEFAULT false,
    sample_value jsonb,
    evidence     jsonb       NOT NULL DEFAULT '{}',
    first_run_id bigint      NOT NULL REFERENCES etl_runs (id),
    last_run_id  bigint      NOT NULL REFERENCES etl_runs (id),
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    seen_count   bigint      NOT NULL DEFAULT 1,
    CONSTRAINT schema_drifts_finding_key UNIQUE (source, kind, field, candidate)
);
CREATE INDEX schema_drifts_last_seen_idx ON schema_drifts (last_seen DESC);
