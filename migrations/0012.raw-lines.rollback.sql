-- rows kept as lines have no payload to fall back to: the rollback refuses while any exists
ALTER TABLE raw_csv DROP CONSTRAINT raw_csv_kept, ALTER COLUMN payload SET NOT NULL, DROP COLUMN line, DROP COLUMN line_offset;
ALTER TABLE raw_rss DROP CONSTRAINT raw_rss_kept, ALTER COLUMN payload SET NOT NULL, DROP COLUMN line, DROP COLUMN line_offset;
ALTER TABLE raw_coingecko DROP CONSTRAINT raw_coingecko_kept, ALTER COLUMN payload SET NOT NULL, DROP COLUMN line, DROP COLUMN line_offset;
ALTER TABLE raw_coinpaprika DROP CONSTRAINT raw_coinpaprika_kept, ALTER COLUMN payload SET NOT NULL, DROP COLUMN line, DROP COLUMN line_offset;
