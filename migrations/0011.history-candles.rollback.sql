DROP INDEX market_history_long_bars_idx;
DROP TRIGGER market_candles_fold ON market_history;
DROP FUNCTION market_candles_fold();
DROP TABLE market_candles;
