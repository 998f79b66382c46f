DROP INDEX IF EXISTS assets_symbol_trgm_idx;
DROP INDEX unified_data_article_title_trgm_idx;
DROP INDEX unified_data_article_description_trgm_idx;
DROP INDEX unified_data_article_category_idx;
DROP INDEX unified_data_article_author_idx;
DROP INDEX unified_data_article_mentions_idx;
CREATE INDEX unified_data_title_trgm_idx ON unified_data USING gin (title gin_trgm_ops);
CREATE INDEX unified_data_description_trgm_idx ON unified_data USING gin (description gin_trgm_ops);
CREATE INDEX unified_data_category_idx ON unified_data (category);
CREATE INDEX unified_data_author_idx ON unified_data (author);
CREATE INDEX unified_data_mentions_idx ON unified_data USING gin (mentions);

CREATE TABLE market_history_flat (LIKE market_history INCLUDING DEFAULTS);
INSERT INTO market_history_flat SELECT * FROM market_history;
DROP TABLE market_history;
ALTER TABLE market_history_flat RENAME TO market_history;
ALTER TABLE market_history ADD PRIMARY KEY (asset_id, source, observed_at);
ALTER TABLE market_history ADD FOREIGN KEY (asset_id) REFERENCES assets (id);
