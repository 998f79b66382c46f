-- Each line of a batch back into a row of raw_csv (no content key is lost: a line's record id
-- and checksum are its record's, or its quarantine entry's), then the batches dropped.
DROP VIEW raw_csv_lines;
DROP FUNCTION raw_csv_line(bigint);
INSERT INTO raw_csv (id, source, source_record_id, checksum, payload, fetched_at, run_id, line, line_offset)
OVERRIDING SYSTEM VALUE
SELECT DISTINCT ON (coalesce(u.source_record_id, q.source_record_id, (b.id + n - 1)::text), coalesce(u.checksum, q.checksum, ''))
       b.id + n - 1, b.source, coalesce(u.source_record_id, q.source_record_id, (b.id + n - 1)::text),
       coalesce(u.checksum, q.checksum, ''), NULL, b.fetched_at, b.run_id, b.lines[n], b.line_offsets[n]
FROM raw_csv_batches b
CROSS JOIN generate_subscripts(b.line_offsets, 1) AS n
LEFT JOIN unified_data u ON u.raw_id = b.id + n - 1 AND u.source = b.source
LEFT JOIN quarantine q ON q.raw_id = b.id + n - 1 AND q.source = b.source
ON CONFLICT (source, source_record_id, checksum) DO NOTHING;
ALTER TABLE quarantine DROP COLUMN raw_id;
DROP TABLE raw_csv_batches;
ALTER TABLE raw_csv ALTER COLUMN id SET INCREMENT BY 1;
