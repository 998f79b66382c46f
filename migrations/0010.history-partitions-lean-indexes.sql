-- History partitioned by year, and indexes only where a query reads them.
-- depends: 0009.quotes-candles-skipped
--
-- market_history becomes a declaratively partitioned table, one partition per calendar year,
-- created on demand by the loader for the years a batch brings; `HISTORY_RETENTION_DAYS` drops
-- whole partitions. History queries with a range are pruned to the partitions it touches. The
-- primary key (asset_id, source, observed_at) serves every history query and the upsert.
--
-- On unified_data, the trigram indexes serve `search` over articles only (market records are
-- searched by their symbol and their asset's name through `assets`), and the indexes of
-- article-only columns (category, author, mentions) hold the rows that have them: a market row,
-- the bulk of every load, no longer writes five index entries nobody reads.

ALTER TABLE market_history RENAME TO market_history_unpartitioned;
ALTER TABLE market_history_unpartitioned RENAME CONSTRAINT market_history_pkey TO market_history_unpartitioned_pkey;
CREATE TABLE market_history (
    asset_id       bigint      NOT NULL REFERENCES assets (id),
    source         text        NOT NULL,
    observed_at    timestamptz NOT NULL,
    price_usd      numeric     NOT NULL,
    market_cap_usd numeric,
    volume_24h_usd numeric,
    run_id         bigint      NOT NULL,
    open_usd       numeric,
    high_usd       numeric,
    low_usd        numeric,
    bar_seconds    integer,
    PRIMARY KEY (asset_id, source, observed_at)
) PARTITION BY RANGE (observed_at);

DO $$
DECLARE
    year integer;
BEGIN
    FOR year IN
        SELECT DISTINCT extract(year FROM observed_at AT TIME ZONE 'UTC')::integer FROM market_history_unpartitioned
    LOOP
        EXECUTE format(
            'CREATE TABLE market_history_y%s PARTITION OF market_history FOR VALUES FROM (%L) TO (%L)',
            year, make_timestamptz(year, 1, 1, 0, 0, 0, 'UTC'), make_timestamptz(year + 1, 1, 1, 0, 0, 0, 'UTC')
        );
    END LOOP;
END $$;
INSERT INTO market_history SELECT asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd,
    run_id, open_usd, high_usd, low_usd, bar_seconds FROM market_history_unpartitioned;
DROP TABLE market_history_unpartitioned;

DROP INDEX unified_data_title_trgm_idx;
DROP INDEX unified_data_description_trgm_idx;
DROP INDEX unified_data_category_idx;
DROP INDEX unified_data_author_idx;
DROP INDEX unified_data_mentions_idx;
CREATE INDEX unified_data_article_title_trgm_idx ON unified_data USING gin (title gin_trgm_ops) WHERE kind = 'article';
CREATE INDEX unified_data_article_description_trgm_idx ON unified_data USING gin (description gin_trgm_ops) WHERE kind = 'article';
CREATE INDEX unified_data_article_category_idx ON unified_data (category) WHERE category IS NOT NULL;
CREATE INDEX unified_data_article_author_idx ON unified_data (author) WHERE author IS NOT NULL;
CREATE INDEX unified_data_article_mentions_idx ON unified_data USING gin (mentions) WHERE kind = 'article';
CREATE INDEX assets_symbol_trgm_idx ON assets USING gin (symbol gin_trgm_ops);
