ALTER TABLE raw_coinpaprika ADD CONSTRAINT raw_coinpaprika_run_id_fkey FOREIGN KEY (run_id) REFERENCES etl_runs (id);
ALTER TABLE raw_coingecko ADD CONSTRAINT raw_coingecko_run_id_fkey FOREIGN KEY (run_id) REFERENCES etl_runs (id);
ALTER TABLE raw_csv ADD CONSTRAINT raw_csv_run_id_fkey FOREIGN KEY (run_id) REFERENCES etl_runs (id);
ALTER TABLE raw_rss ADD CONSTRAINT raw_rss_run_id_fkey FOREIGN KEY (run_id) REFERENCES etl_runs (id);
ALTER TABLE unified_data ADD CONSTRAINT unified_data_first_run_id_fkey FOREIGN KEY (first_run_id) REFERENCES etl_runs (id);
ALTER TABLE unified_data ADD CONSTRAINT unified_data_last_run_id_fkey FOREIGN KEY (last_run_id) REFERENCES etl_runs (id);
ALTER TABLE market_history ADD CONSTRAINT market_history_run_id_fkey FOREIGN KEY (run_id) REFERENCES etl_runs (id);
