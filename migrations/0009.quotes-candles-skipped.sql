-- Prices in their quote currency, candles from the files' own bars, and skipped sources.
-- depends: 0008.bulk-lineage-without-run-constraints
--
-- A market record is a price of `symbol` in `quote_currency` (`price`); `price_usd` holds a
-- price only when the quote is USD-like or the price was converted. A bar's own open, high and
-- low (in USD) and its length are kept with the record and with its history row, so a candle
-- is built from the bars in it. A source can now be `skipped` (a CSV glob matching nothing).

ALTER TABLE unified_data
    ADD COLUMN quote_currency text,
    ADD COLUMN price numeric,
    ADD COLUMN open_usd numeric,
    ADD COLUMN high_usd numeric,
    ADD COLUMN low_usd numeric,
    ADD COLUMN bar_seconds integer;
-- every market record before this version was quoted in USD
UPDATE unified_data SET quote_currency = 'USD', price = price_usd WHERE kind = 'market';

ALTER TABLE market_history
    ADD COLUMN open_usd numeric,
    ADD COLUMN high_usd numeric,
    ADD COLUMN low_usd numeric,
    ADD COLUMN bar_seconds integer;

ALTER TABLE etl_run_sources DROP CONSTRAINT etl_run_sources_status_check;
ALTER TABLE etl_run_sources ADD CONSTRAINT etl_run_sources_status_check
    CHECK (status IN ('running', 'success', 'partial', 'failed', 'skipped'));
