-- `/data?kind=article` read by an index of the articles alone: a market row (most of the table:
-- every bar of every file) no longer writes an entry for `kind`, and `/data?kind=market` reads
-- the published index, skipping the few articles (benchmarks/README.md: 1.7 µs a row of the
-- database's writes for a million bars).
-- depends: 0018.binance-klines

CREATE INDEX unified_data_article_kind_idx ON unified_data (published_at DESC NULLS LAST, id DESC)
    WHERE kind = 'article';
DROP INDEX unified_data_kind_idx;
