DROP TRIGGER market_candles_refold ON market_history;
DROP FUNCTION market_candles_refold();
