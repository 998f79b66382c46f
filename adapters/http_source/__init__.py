"""HTTP API sources (CoinPaprika, CoinGecko) on httpx, with rate limits and stamina retries."""
