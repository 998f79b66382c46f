-- market_history's yearly partitions for every year data can have (2009, the first block, to
-- 2030), made now: a partition made during a load takes locks on `assets` (its foreign key) that
-- a loader resolving assets at the same moment holds, and the two deadlocked. Later years are
-- still made on demand, each in a transaction of its own.
-- depends: 0013.run-request-failures

DO $$
DECLARE
    year integer;
BEGIN
    FOR year IN 2009..2030 LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF market_history FOR VALUES FROM (%L) TO (%L)',
            'market_history_y' || year, make_timestamptz(year, 1, 1, 0, 0, 0, 'UTC'),
            make_timestamptz(year + 1, 1, 1, 0, 0, 0, 'UTC')
        );
    END LOOP;
END $$;
