-- The assets an article mentions (their symbols), so /data?symbol=BTC finds Bitcoin news too.
-- depends: 0005.provider-responses

ALTER TABLE unified_data ADD COLUMN mentions text[] NOT NULL DEFAULT '{}';
CREATE INDEX unified_data_mentions_idx ON unified_data USING gin (mentions);
