CREATE INDEX unified_data_kind_idx ON unified_data (kind, published_at DESC NULLS LAST, id DESC);
DROP INDEX unified_data_article_kind_idx;
