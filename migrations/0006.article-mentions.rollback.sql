DROP INDEX IF EXISTS unified_data_mentions_idx;
ALTER TABLE unified_data DROP COLUMN IF EXISTS mentions;
