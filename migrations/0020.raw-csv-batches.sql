-- A CSV batch's raw lines stored once, as one row: the lines and where each starts in the file.
-- depends: 0019.article-kind-index
--
-- Until now every CSV line was a row of `raw_csv` with two index entries (its id, its content
-- key): about a quarter of the database's work on a first load. From now on a batch of lines the
-- loader reads is one row of `raw_csv_batches`: `lines` (each as read, without its line break)
-- and `line_offsets` (the byte offset in the file where each starts), and `digest` (SHA-256 of
-- the source, lines and offsets), so a batch read again (a crash replayed, a full refresh) is
-- stored once.
--
-- Lineage keeps its meaning: a record's `raw_id` is the id of its line. `raw_csv`'s ids now
-- advance by 2^20 (1,048,576), aligned to it: a batch takes one id from that sequence and numbers
-- its lines from it (line n of batch b has id b + n), so the id of a line names its batch
-- (`id - id % 1048576`) and its place in it, and no line's id is ever another's. Rows of `raw_csv`
-- (the lines stored before this migration, an oversized row's cut cells, a provider's payload
-- replayed from quarantine) keep their ids; `raw_csv_lines` shows both as one relation.
--
-- A quarantined record remembers its raw line (`quarantine.raw_id`): a replay points the record
-- at the line it was first read from rather than storing it again.

CREATE TABLE raw_csv_batches (
    id           bigint      PRIMARY KEY,  -- the id of its first line; a multiple of 1048576
    source       text        NOT NULL,
    run_id       bigint      NOT NULL,
    fetched_at   timestamptz NOT NULL,
    lines        text[]      NOT NULL,
    line_offsets bigint[]    NOT NULL,
    digest       text        NOT NULL,
    CONSTRAINT raw_csv_batches_digest_key UNIQUE (digest),
    CONSTRAINT raw_csv_batches_aligned CHECK (id % 1048576 = 0),
    CONSTRAINT raw_csv_batches_shape CHECK (
        cardinality(lines) = cardinality(line_offsets) AND cardinality(lines) BETWEEN 1 AND 1048576
    )
);

DO $$
DECLARE
    next_id bigint := ((coalesce((SELECT max(id) FROM raw_csv), 0) / 1048576) + 1) * 1048576;
BEGIN
    EXECUTE format(
        'ALTER TABLE raw_csv ALTER COLUMN id SET INCREMENT BY 1048576 SET START WITH %s RESTART WITH %s',
        next_id, next_id
    );
END $$;

ALTER TABLE quarantine ADD COLUMN raw_id bigint;

-- one raw line by its id, by one probe of its batch's key (or of raw_csv's): what a lineage join
-- uses, `FROM unified_data u CROSS JOIN LATERAL raw_csv_line(u.raw_id) r` (the view below lists
-- every line, for scans: a join on its computed id reads every batch)
CREATE FUNCTION raw_csv_line(raw_id bigint)
RETURNS TABLE (id bigint, source text, run_id bigint, fetched_at timestamptz, line text, line_offset bigint, payload jsonb)
LANGUAGE sql STABLE AS $$
    SELECT raw_id, b.source, b.run_id, b.fetched_at, b.lines[raw_id - b.id + 1], b.line_offsets[raw_id - b.id + 1], NULL::jsonb
    FROM raw_csv_batches b
    WHERE b.id = raw_id - raw_id % 1048576 AND raw_id - b.id < cardinality(b.line_offsets)
    UNION ALL
    SELECT r.id, r.source, r.run_id, r.fetched_at, r.line, r.line_offset, r.payload FROM raw_csv r WHERE r.id = raw_id
$$;

CREATE VIEW raw_csv_lines AS
SELECT b.id + n - 1 AS id, b.source, b.run_id, b.fetched_at, b.lines[n] AS line, b.line_offsets[n] AS line_offset,
       NULL::jsonb AS payload
FROM raw_csv_batches b, generate_subscripts(b.line_offsets, 1) AS n
UNION ALL
SELECT id, source, run_id, fetched_at, line, line_offset, payload FROM raw_csv;
