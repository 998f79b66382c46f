DROP TABLE IF EXISTS raw_binance;
