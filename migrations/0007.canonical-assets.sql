-- Canonical assets: one Bitcoin across every source, its aliases per source, and the price
-- history of every observation (append-only, idempotent).
-- depends: 0006.article-mentions

CREATE TABLE assets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol       text        NOT NULL,
    name         text,
    needs_review boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assets_symbol_idx ON assets (symbol);
CREATE INDEX assets_name_trgm_idx ON assets USING gin (name gin_trgm_ops);

CREATE TABLE asset_aliases (
    source          text        NOT NULL,
    source_asset_id text        NOT NULL,
    asset_id        bigint      NOT NULL REFERENCES assets (id),
    method          text        NOT NULL CHECK (method IN ('crossref', 'exact', 'fuzzy', 'new')),
    confidence      numeric(4, 3) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_asset_id)
);
CREATE INDEX asset_aliases_asset_idx ON asset_aliases (asset_id);

ALTER TABLE unified_data ADD COLUMN asset_id bigint REFERENCES assets (id);
CREATE INDEX unified_data_asset_idx ON unified_data (asset_id, published_at DESC NULLS LAST, id DESC);

CREATE TABLE market_history (
    asset_id       bigint      NOT NULL REFERENCES assets (id),
    source         text        NOT NULL,
    observed_at    timestamptz NOT NULL,
    price_usd      numeric     NOT NULL,
    market_cap_usd numeric,
    volume_24h_usd numeric,
    run_id         bigint      NOT NULL REFERENCES etl_runs (id),
    PRIMARY KEY (asset_id, source, observed_at)
);
