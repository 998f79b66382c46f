DROP TABLE IF EXISTS market_history;
ALTER TABLE unified_data DROP COLUMN IF EXISTS asset_id;
DROP TABLE IF EXISTS asset_aliases, assets;
