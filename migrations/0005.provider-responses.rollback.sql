DROP TABLE IF EXISTS provider_responses;
