DROP TABLE IF EXISTS run_observations;
