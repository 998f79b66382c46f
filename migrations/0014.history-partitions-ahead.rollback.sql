-- empty partitions made ahead go; those holding rows stay (the data is kept)
DO $$
DECLARE
    year integer;
    name text;
    has_rows boolean;
BEGIN
    FOR year IN 2009..2030 LOOP
        name := 'market_history_y' || year;
        IF to_regclass(name) IS NOT NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', name) INTO has_rows;
            IF NOT has_rows THEN
                EXECUTE format('DROP TABLE %I', name);
            END IF;
        END IF;
    END LOOP;
END $$;
