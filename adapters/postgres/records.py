"""Set-based loading of a batch: COPY straight into the tables when its keys are new, else COPY
into staging tables and one upsert per target.

A file's lines are stored a batch a row (`raw_csv_batches`, once per digest), each line's id its
batch's id plus its place; other raw payloads a row each, once per (source, source_record_id,
checksum). Unified rows are upserted with `ON CONFLICT ... DO UPDATE ... WHERE checksum IS
DISTINCT FROM`, so an unchanged record costs no write, and `xmax = 0` tells an insert from an
update.

The common case of a first load (or an append) meets no stored key: its lines are one new batch
row (other payloads get their ids from the raw table's own sequence and are COPYed into the raw
table), and its unified rows are COPYed into theirs, under a savepoint. A key met after all (a batch replayed after a
crash, a record changed, a line repeated across batches) fails the COPY with a unique violation,
and that batch takes the staging-and-upsert path instead: the same rows, the same result.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from adapters.postgres import copy_text
from application.ports import BarColumns, LoadCounts, PreparedRows, StoredRaws, TextColumn
from domain.checksum import canonical_json
from domain.comparison import DataDelta, PriceQuote
from domain.mentions import KnownAsset
from domain.records import QuarantinedRecord, RawRecord, SourceType, UnifiedRecord, is_snapshot_source

# a source's raw payloads land in `raw_<kind>`: `raw_csv` for `csv:prices`, `raw_coingecko` for
# `coingecko` and its history `coingecko:1d` (a kind's migration creates its table)
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

UNIFIED_COLUMNS = (
    "source_type", "source", "source_record_id", "kind", "title", "description", "author",
    "category", "tags", "url", "published_at", "symbol", "asset_name", "price_usd",
    "market_cap_usd", "volume_24h_usd", "rank", "pct_change_24h", "observed_at", "extra",
    "checksum", "mentions", "asset_id", "quote_currency", "price", "open_usd", "high_usd", "low_usd",
    "bar_seconds",
)  # fmt: skip

CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_raw (
    source text, source_record_id text, checksum text, payload jsonb, fetched_at timestamptz,
    line text, line_offset bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_unified ON COMMIT DELETE ROWS AS
    SELECT {columns}, raw_id, first_run_id, last_run_id FROM unified_data WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS staging_quarantine (
    source text, source_record_id text, checksum text, reason text, payload jsonb, raw_id bigint
) ON COMMIT DELETE ROWS;
"""

# the three are created by one statement, in one transaction: the last one standing means all
STAGING_EXISTS = "SELECT to_regclass('pg_temp.staging_quarantine') IS NOT NULL"

# a unified row as encoded: its columns, then its raw row's id when known and its run
ENCODED_COLUMNS = (*UNIFIED_COLUMNS, "raw_id", "first_run_id", "last_run_id")

COPY_RAW = (
    "COPY staging_raw (source, source_record_id, checksum, payload, fetched_at, line, line_offset) FROM STDIN"
)
COPY_UNIFIED = sql.SQL("COPY staging_unified ({}) FROM STDIN").format(
    sql.SQL(", ").join(map(sql.Identifier, ENCODED_COLUMNS))
)
COPY_UNIFIED_DIRECT = sql.SQL("COPY unified_data ({}) FROM STDIN").format(
    sql.SQL(", ").join(map(sql.Identifier, ENCODED_COLUMNS))
)
# COPY writes the ids given for an identity column (as OVERRIDING SYSTEM VALUE would)
COPY_RAW_DIRECT = "COPY {raw} (source, source_record_id, checksum, payload, fetched_at, line, line_offset, id, run_id) FROM STDIN"
# `count` ids in one row; the sequence found once (asked per row, its lookup cost six times the
# nextval itself)
ALLOCATE_RAW_IDS = (
    "SELECT array_agg(nextval((SELECT pg_get_serial_sequence(%(table)s, 'id')::regclass)))"
    " FROM generate_series(1, %(count)s)"
)
COPY_QUARANTINE = (
    "COPY staging_quarantine (source, source_record_id, checksum, reason, payload, raw_id) FROM STDIN"
)

# the raw tables whose lines are kept a batch a row (migration 0020), in `<table>_batches`
BATCHED = frozenset({"raw_csv"})
# a batch row's lines are numbered from its id, which the raw table's sequence advances by this
BATCH_LINES = 1 << 20
STORE_LINES = """
INSERT INTO raw_csv_batches (id, source, run_id, fetched_at, lines, line_offsets, digest)
VALUES (nextval((SELECT pg_get_serial_sequence('raw_csv', 'id')::regclass)), %(source)s, %(run_id)s,
        %(fetched_at)s, %(lines)s::text[], %(offsets)s::bigint[], %(digest)s)
ON CONFLICT (digest) DO NOTHING
RETURNING id
"""
SELECT_LINES = "SELECT id FROM raw_csv_batches WHERE digest = %(digest)s"
# the lines the quarantine holds of these records, by content (a file read again)
SELECT_QUARANTINED_LINES = """
SELECT q.source_record_id, q.checksum, q.raw_id
FROM quarantine q JOIN unnest(%(ids)s::text[], %(sums)s::text[]) AS k (id, checksum)
  ON (q.source_record_id, q.checksum) = (k.id, k.checksum)
WHERE q.source = %(source)s AND q.raw_id IS NOT NULL
"""

INSERT_RAW = """
INSERT INTO {raw} (source, source_record_id, checksum, payload, fetched_at, line, line_offset, run_id)
SELECT DISTINCT ON (source, source_record_id, checksum)
       source, source_record_id, checksum, payload, fetched_at, line, line_offset, %(run_id)s
FROM staging_raw
ON CONFLICT (source, source_record_id, checksum) DO NOTHING
"""

# A scalar subquery, so each staged row is one probe of the raw table's unique index: a join
# of the (unanalyzed) staging table was planned as a hash of the whole raw table, a scan that
# grew with every batch loaded.
RAW_ID_OF_STAGED = """(
    SELECT r.id FROM {raw} r
    WHERE (r.source, r.source_record_id, r.checksum) = (s.source, s.source_record_id, s.checksum)
)"""

# A bar of a file or of a provider's history is its record (migration 0022: `market_history` is a
# view): the statement triggers of `unified_data` fold the rows inserted, and those updated again,
# into the candles, so `/data` and `/assets/{id}/history` say the same of every bar. A provider's
# snapshot is one record per coin, updated by every run, and each run's observation is a row of
# `market_snapshots`: for a snapshot source (only), an updated record moves the observation of its
# time with it (MOVE_SNAPSHOTS; the table's triggers fold its candles again), a new observation is
# inserted after (INSERT_SNAPSHOTS).
UPSERT_UNIFIED = """
WITH upserted AS (
    INSERT INTO unified_data ({columns}, raw_id, first_run_id, last_run_id)
    SELECT {staged}, coalesce(s.raw_id, {raw_id}), %(run_id)s, %(run_id)s
    FROM staging_unified s
    ON CONFLICT (source, source_record_id) DO UPDATE SET
        {updates}, raw_id = EXCLUDED.raw_id, last_run_id = EXCLUDED.last_run_id,
        updated_at = now()
    WHERE unified_data.checksum IS DISTINCT FROM EXCLUDED.checksum
    RETURNING (xmax = 0) AS inserted{moved_columns}
){move}
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""
MOVED_COLUMNS = """, asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd,
              open_usd, high_usd, low_usd, bar_seconds"""
MOVE_SNAPSHOTS = """, moved AS (
    UPDATE market_snapshots h SET
        price_usd = u.price_usd, market_cap_usd = u.market_cap_usd, volume_24h_usd = u.volume_24h_usd,
        open_usd = u.open_usd, high_usd = u.high_usd, low_usd = u.low_usd, bar_seconds = u.bar_seconds,
        run_id = %(run_id)s
    FROM (
        SELECT DISTINCT ON (asset_id, source, observed_at) * FROM upserted
        WHERE NOT inserted AND asset_id IS NOT NULL AND observed_at IS NOT NULL AND price_usd IS NOT NULL
        ORDER BY asset_id, source, observed_at
    ) AS u
    WHERE (h.asset_id, h.source, h.observed_at) = (u.asset_id, u.source, u.observed_at)
      AND (h.price_usd, h.market_cap_usd, h.volume_24h_usd, h.open_usd, h.high_usd, h.low_usd, h.bar_seconds)
          IS DISTINCT FROM
          (u.price_usd, u.market_cap_usd, u.volume_24h_usd, u.open_usd, u.high_usd, u.low_usd, u.bar_seconds)
    RETURNING 1
)"""

INSERT_QUARANTINE = """
INSERT INTO quarantine (source, source_record_id, checksum, reason, payload, raw_id, first_run_id, last_run_id)
SELECT DISTINCT ON (q.source, q.source_record_id, q.checksum)
       q.source, q.source_record_id, q.checksum, q.reason, q.payload, q.raw_id, %(run_id)s, %(run_id)s
FROM staging_quarantine q
ON CONFLICT (source, source_record_id, checksum) DO UPDATE SET
    reason = EXCLUDED.reason, last_run_id = EXCLUDED.last_run_id, updated_at = now(),
    raw_id = coalesce(quarantine.raw_id, EXCLUDED.raw_id)  -- the line it was first read from
"""


# a quarantined payload that loads now (a replay, a full refresh under new options) leaves the
# quarantine: one probe of its content key per staged record, only when the source has entries
RELEASE_QUARANTINED = """
DELETE FROM quarantine q USING staging_unified s
WHERE q.source = s.source AND q.source_record_id = s.source_record_id AND q.checksum = s.checksum
"""
# the same after a batch went straight in: its records are this run's, and a source's entries
# few (each probes the unified key)
RELEASE_LOADED = """
DELETE FROM quarantine q USING unified_data u
WHERE q.source = %(source)s AND (u.source, u.source_record_id, u.checksum) = (q.source, q.source_record_id, q.checksum)
  AND u.last_run_id = %(run_id)s
"""
ANY_QUARANTINED = "SELECT EXISTS (SELECT 1 FROM quarantine WHERE source = %(source)s)"

INSERT_SNAPSHOTS = """
INSERT INTO market_snapshots (asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd, run_id,
                              open_usd, high_usd, low_usd, bar_seconds)
SELECT asset_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd, %(run_id)s,
       open_usd, high_usd, low_usd, bar_seconds
FROM staging_unified
WHERE asset_id IS NOT NULL AND observed_at IS NOT NULL AND price_usd IS NOT NULL
ON CONFLICT DO NOTHING
"""
INSERT_OBSERVATIONS = """
INSERT INTO run_observations (run_id, source, source_record_id, price_usd, symbol, rank, asset_id)
SELECT %(run_id)s, source, source_record_id, price_usd, symbol, rank, asset_id FROM staging_unified
WHERE source_type = 'api' AND strpos(source, ':') = 0  -- a provider's snapshot, not its history
ON CONFLICT DO NOTHING
"""
SELECT_OBSERVATION_DELTA = """
WITH a AS (SELECT source_record_id, price_usd FROM run_observations WHERE source = %(source)s AND run_id = %(run_a)s),
     b AS (SELECT source_record_id, price_usd FROM run_observations WHERE source = %(source)s AND run_id = %(run_b)s),
     added AS (SELECT source_record_id FROM b EXCEPT SELECT source_record_id FROM a),
     vanished AS (SELECT source_record_id FROM a EXCEPT SELECT source_record_id FROM b),
     moves AS (
         SELECT (b.price_usd - a.price_usd) / a.price_usd * 100 AS pct
         FROM a JOIN b USING (source_record_id) WHERE a.price_usd > 0 AND b.price_usd IS NOT NULL
     )
SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b),
       (SELECT count(*) FROM added), (SELECT count(*) FROM vanished), (SELECT count(*) FROM moves),
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY pct) FROM moves),
       (SELECT count(*) FROM moves WHERE abs(pct) > %(threshold)s),
       (SELECT coalesce(array_agg(source_record_id), '{}') FROM (SELECT source_record_id FROM added ORDER BY 1 LIMIT 10) s),
       (SELECT coalesce(array_agg(source_record_id), '{}') FROM (SELECT source_record_id FROM vanished ORDER BY 1 LIMIT 10) s)
"""
PRUNE_OBSERVATIONS = """
DELETE FROM run_observations
WHERE source = %(source)s
  AND run_id < ALL (
      SELECT run_id FROM (SELECT DISTINCT run_id FROM run_observations WHERE source = %(source)s) kept
      ORDER BY run_id DESC LIMIT %(keep)s
  )
"""

SELECT_QUOTES_AS_OF = """
WITH runs AS (
    SELECT source, max(run_id) AS run_id FROM run_observations WHERE run_id <= %(run_id)s GROUP BY source
)
SELECT o.symbol, o.source, o.price_usd::float8, o.rank, o.asset_id, r.started_at
FROM run_observations o JOIN runs USING (source, run_id) JOIN etl_runs r ON r.id = o.run_id
WHERE (o.asset_id IS NOT NULL OR o.rank <= %(max_rank)s) AND o.price_usd IS NOT NULL AND o.symbol IS NOT NULL
"""

SELECT_CURRENT_CHECKSUMS = """
SELECT source_record_id, checksum FROM unified_data
WHERE source = %(source)s AND source_record_id = ANY(%(ids)s)
"""
SELECT_CURRENT_CHECKSUMS_JOINED = """
SELECT source_record_id, checksum FROM unified_data
WHERE source = %(source)s AND source_record_id = ANY(string_to_array(%(ids)s, E'\\n'))
"""
OBSERVE_UNCHANGED = """
WITH seen AS (
    SELECT source_type, source, source_record_id, price_usd, symbol, rank, asset_id,
           coalesce(observed_at, published_at) AS at
    FROM unified_data WHERE source = %(source)s AND source_record_id = ANY(%(ids)s)
), kept AS (
    INSERT INTO run_observations (run_id, source, source_record_id, price_usd, symbol, rank, asset_id)
    SELECT %(run_id)s, source, source_record_id, price_usd, symbol, rank, asset_id FROM seen
    WHERE source_type = 'api' AND strpos(source, ':') = 0
    ON CONFLICT DO NOTHING
)
SELECT max(at) FROM seen
"""

SELECT_KNOWN_ASSETS = """
SELECT DISTINCT symbol, asset_name FROM unified_data
WHERE kind = 'market' AND symbol IS NOT NULL AND (rank <= %(max_rank)s OR source_type = 'csv')
"""

SELECT_LATEST_PAYLOADS = """
SELECT u.source_record_id, r.payload
FROM unified_data u JOIN {raw} r ON r.id = u.raw_id
WHERE u.source = %(source)s AND u.source_record_id = ANY(%(ids)s) AND r.payload IS NOT NULL
"""


def raw_table_for(source: str) -> str:
    """The raw table a source's payloads land in: `raw_<kind>`, the kind before any `:`."""
    kind = source.partition(":")[0]
    if not _KIND.match(kind):
        raise ValueError(f"no raw table for source {source!r}")
    return f"raw_{kind}"


class PostgresRecordRepository:
    """Writes batches on the unit of work's connection; never commits."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection
        self._staging_ready = False

    def store_raws(self, run_id: int, raws: Sequence[RawRecord]) -> StoredRaws:
        """The batch's raw payloads, each stored once: a file's lines as one batch row
        (`_store_lines`), any other payload as a row of its own (`_store_payloads`). The receipt
        holds the ids known (every line's; the other payloads' when new), for `prepare_rows`."""
        if not raws:
            return StoredRaws(run_id, _RawIds({}, fresh=True))
        raw_table = raw_table_for(_one_source(raw.source for raw in raws))
        ids: dict[tuple[str, str], int] = {}
        fresh = True
        kept = [raw for raw in raws if raw.stored_as is None]
        if len(kept) < len(raws):  # read again from the quarantine: its line is stored already
            fresh = False
            ids.update(
                ((raw.source_record_id, raw.checksum), raw.stored_as)
                for raw in raws
                if raw.stored_as is not None
            )
        lines = [raw for raw in kept if raw.line is not None] if raw_table in BATCHED else []
        if lines:
            lines.sort(key=lambda raw: raw.position or 0)  # the file's order (quarantined rows come last)
            numbered, new = self._store_lines(
                run_id,
                lines[0].source,
                lines[0].fetched_at,
                [raw.line or "" for raw in lines],
                [raw.position or 0 for raw in lines],
                lambda: [(raw.source_record_id, raw.checksum) for raw in lines],
            )
            fresh = fresh and new
            # in order: a record read twice in the batch points at its later line
            ids.update(
                ((raw.source_record_id, raw.checksum), i) for raw, i in zip(lines, numbered, strict=True)
            )
            kept = [raw for raw in kept if raw.line is None]
        if kept:
            stored = self._store_payloads(raw_table, run_id, kept)
            if stored is None:
                fresh = False  # found by their content as the batch is written
            else:
                ids.update(stored)
        return StoredRaws(run_id, _RawIds(ids, fresh))

    def store_block_raws(self, run_id: int, block: BarColumns) -> StoredRaws:
        """A block's lines as one batch row, as `store_raws` stores a batch's (each line's id, in
        order, in the receipt)."""
        if not block.count:
            return StoredRaws(run_id, _RawIds((), fresh=True))
        numbered, fresh = self._store_lines(
            run_id,
            block.source,
            block.fetched_at,
            block.lines,
            block.offsets,
            lambda: list(
                zip(
                    map(str, block.records["source_record_id"].to_pylist()),
                    map(str, block.records["checksum"].to_pylist()),
                    strict=True,
                )
            ),
        )
        return StoredRaws(run_id, _RawIds(tuple(numbered), fresh))

    def _store_lines(
        self,
        run_id: int,
        source: str,
        fetched_at: datetime,
        lines: Sequence[str],
        offsets: Sequence[int],
        keys: Callable[[], Sequence[tuple[str, str]]],
    ) -> tuple[list[int], bool]:
        """A batch of a file's lines stored once (by its digest) as rows of `raw_csv_batches`, each
        of up to 2^20 lines numbered from its id: each line's id, and whether all are new. A batch
        read again (a crash replayed, a full refresh) finds its rows, and so its ids; a line whose
        record the quarantine holds with the same content (`keys`: each line's record id and
        checksum, asked only then) keeps the id it was stored under when it was quarantined."""
        cursor = self._connection.cursor()
        before: dict[int, int] = {}  # a line's place -> its id, stored before
        if (cursor.execute(ANY_QUARANTINED, {"source": source}).fetchone() or (False,))[0]:
            wanted = keys()
            asked: dict[str, Any] = {
                "source": source,
                "ids": [key for key, _ in wanted],
                "sums": [checksum for _, checksum in wanted],
            }
            held = {
                (key, checksum): int(raw)
                for key, checksum, raw in cursor.execute(SELECT_QUARANTINED_LINES, asked)
            }
            before = {place: held[key] for place, key in enumerate(wanted) if key in held}
        new = [place for place in range(len(lines)) if place not in before]
        ids = dict(before)
        fresh = not before
        for start in range(0, len(new), BATCH_LINES):
            places = new[start : start + BATCH_LINES]
            literal = _text_array([lines[place] for place in places])
            positions = "{" + ",".join(str(offsets[place]) for place in places) + "}"
            digest = hashlib.sha256(f"{source}\x00{positions}\x00{literal}".encode()).hexdigest()
            params = {
                "source": source, "run_id": run_id, "fetched_at": fetched_at,
                "lines": literal, "offsets": positions, "digest": digest,
            }  # fmt: skip
            row = cursor.execute(STORE_LINES, params).fetchone()
            if row is None:
                fresh = False
                row = cursor.execute(SELECT_LINES, params).fetchone()
            assert row is not None  # stored now, or before under this digest
            ids.update((place, int(row[0]) + n) for n, place in enumerate(places))
        return [ids[place] for place in range(len(lines))], fresh

    def _store_payloads(
        self, raw_table: str, run_id: int, raws: Sequence[RawRecord]
    ) -> dict[tuple[str, str], int] | None:
        """Raw payloads a row each, each stored once: COPYed straight into the raw table with new
        ids when none of them is stored yet (their ids returned, by record id and checksum), else
        (None) COPYed into staging and inserted where new."""
        unique = list({(raw.source_record_id, raw.checksum): raw for raw in raws}.values())  # in order
        cursor = self._connection.cursor()
        try:
            with _savepoint(self._connection):
                ids = _allocated(cursor, raw_table, len(unique))
                with cursor.copy(sql.SQL(COPY_RAW_DIRECT).format(raw=sql.Identifier(raw_table))) as copy:
                    copy.write(
                        copy_text.encode(
                            (*_raw_row(raw), str(i), str(run_id)) for raw, i in zip(unique, ids, strict=True)
                        )
                    )
            return {(raw.source_record_id, raw.checksum): i for raw, i in zip(unique, ids, strict=True)}
        except psycopg.errors.UniqueViolation:
            pass  # one of them is stored already: each is stored once, through staging
        self._ensure_staging(cursor)
        with cursor.copy(COPY_RAW) as copy:
            copy.write(copy_text.encode(_raw_row(raw) for raw in raws))
        cursor.execute(sql.SQL(INSERT_RAW).format(raw=sql.Identifier(raw_table)), {"run_id": run_id})
        return None

    def prepare_block(self, stored: StoredRaws, block: BarColumns) -> PreparedRows:
        """A block's records as `prepare_rows` prepares a batch's, from its columns: written as
        CSV by Arrow, no Python object per value."""
        count, run = block.count, str(stored.run_id)
        receipt = stored.content if isinstance(stored.content, _RawIds) else _RawIds((), fresh=False)
        ids = receipt.ids if isinstance(receipt.ids, tuple) else ()
        columns = {
            name: _arrow(block.records[name]) if name in block.records else _same(_EMPTY.get(name), count)
            for name in UNIFIED_COLUMNS
        }
        columns["raw_id"] = pa.array(map(str, ids), pa.string()) if ids else pa.nulls(count, pa.string())
        columns["first_run_id"] = columns["last_run_id"] = _same(run, count)
        direct = receipt.fresh and bool(ids) and count > 0  # every line new: straight into the tables
        return PreparedRows(
            source=block.source,
            content=_Copies(
                unified=_csv(columns),
                quarantine=b"",
                records=count,
                quarantined=0,
                direct=direct,
                form=CSV,
            ),
        )

    def prepare_rows(
        self, stored: StoredRaws, records: Sequence[UnifiedRecord], quarantined: Sequence[QuarantinedRecord]
    ) -> PreparedRows:
        sources = [record.source for record in records] + [item.raw.source for item in quarantined]
        run_id = stored.run_id
        receipt = stored.content if isinstance(stored.content, _RawIds) else _RawIds({}, fresh=False)
        known = receipt.ids if isinstance(receipt.ids, dict) else {}
        rows = [
            (
                *_unified_row(record),
                _raw_id(known, record.source_record_id, record.checksum),
                str(run_id),
                str(run_id),
            )
            for record in records
        ]
        # straight into the tables: every record's raw row new (its id known), and no API snapshot
        # (whose observations are kept per run, through staging; a provider's history keeps none)
        direct = (
            bool(records)
            and receipt.fresh
            and all(row[-3] != copy_text.NULL for row in rows)
            and not any(
                record.source_type is SourceType.API and is_snapshot_source(record.source)
                for record in records
            )
        )
        return PreparedRows(
            source=_one_source(sources) if sources else None,
            content=_Copies(
                unified=copy_text.encode(rows),
                quarantine=copy_text.encode(_quarantine_row(item, known) for item in quarantined),
                records=len(rows),
                quarantined=len(quarantined),
                direct=direct,
            ),
        )

    def write_prepared(self, run_id: int, encoded: PreparedRows) -> LoadCounts:
        copies = encoded.content
        if encoded.source is None or not isinstance(copies, _Copies):
            return LoadCounts()
        raw_table = sql.Identifier(raw_table_for(encoded.source))
        params = {"run_id": run_id}
        cursor = self._connection.cursor()
        inserted = updated = 0
        # entries of the source's quarantine that load now leave it (a line quarantined before may
        # be new to the raw table: a full refresh reads it alone, its neighbours found unchanged)
        quarantined = bool(
            copies.records
            and (cursor.execute(ANY_QUARANTINED, {"source": encoded.source}).fetchone() or (False,))[0]
        )
        if copies.records and copies.direct and self._copy_direct(cursor, copies):
            inserted = copies.records
            if quarantined:
                cursor.execute(RELEASE_LOADED, {"source": encoded.source, "run_id": run_id})
        elif copies.records:
            self._ensure_staging(cursor)
            with cursor.copy(_in(COPY_UNIFIED, copies.form)) as copy:
                copy.write(copies.unified)
            # a provider's snapshot keeps each run's observations; a file's or history's bar is its record
            snapshots = is_snapshot_source(encoded.source)
            cursor.execute(_upsert_statement(raw_table, snapshots), params)
            inserted, updated = cursor.fetchone() or (0, 0)
            if quarantined:
                cursor.execute(RELEASE_QUARANTINED)
            if snapshots:
                cursor.execute(INSERT_OBSERVATIONS, params)
                cursor.execute(INSERT_SNAPSHOTS, params)
        if copies.quarantined:
            self._ensure_staging(cursor)
            with cursor.copy(COPY_QUARANTINE) as copy:
                copy.write(copies.quarantine)
            cursor.execute(INSERT_QUARANTINE, params)
        return LoadCounts(
            inserted=inserted,
            updated=updated,
            unchanged=copies.records - inserted - updated,
            quarantined=copies.quarantined,
        )

    def _copy_direct(self, cursor: psycopg.Cursor, copies: _Copies) -> bool:
        """The batch's unified rows COPYed into their table, under a savepoint: False (nothing
        written) when a key is met after all."""
        try:
            with _savepoint(self._connection), cursor.copy(_in(COPY_UNIFIED_DIRECT, copies.form)) as copy:
                copy.write(copies.unified)
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def known_assets(self, max_rank: int) -> list[KnownAsset]:
        rows = self._connection.execute(SELECT_KNOWN_ASSETS, {"max_rank": max_rank})
        return [KnownAsset(symbol, name) for symbol, name in rows]

    def current_checksums(self, source: str, record_ids: Sequence[str]) -> dict[str, str]:
        joined = "\n".join(record_ids)
        if record_ids and joined.count("\n") == len(record_ids) - 1:  # no id holds a line break
            # one text, split by the server: an array of thousands of texts costs the driver a
            # quoting check per element, several times the query
            rows = self._connection.execute(
                SELECT_CURRENT_CHECKSUMS_JOINED, {"source": source, "ids": joined}
            )
        else:
            rows = self._connection.execute(
                SELECT_CURRENT_CHECKSUMS, {"source": source, "ids": list(record_ids)}
            )
        return dict(rows.fetchall())

    def observe_unchanged(self, run_id: int, source: str, record_ids: Sequence[str]) -> datetime | None:
        params = {"run_id": run_id, "source": source, "ids": list(record_ids)}
        row = self._connection.execute(OBSERVE_UNCHANGED, params).fetchone()
        return row[0] if row else None

    def observation_delta(
        self, source: str, run_a: int, run_b: int, threshold_pct: float
    ) -> DataDelta | None:
        params = {"source": source, "run_a": run_a, "run_b": run_b, "threshold": threshold_pct}
        row = self._connection.execute(SELECT_OBSERVATION_DELTA, params).fetchone()
        if row is None or not row[0] or not row[1]:
            return None
        in_a, in_b, added, vanished, compared, median, moved, added_ids, vanished_ids = row
        return DataDelta(
            in_a=in_a,
            in_b=in_b,
            added=added,
            vanished=vanished,
            compared=compared,
            median_price_move_pct=round(float(median), 4) if median is not None else None,
            moved_over_threshold=moved,
            threshold_pct=threshold_pct,
            added_sample=tuple(added_ids),
            vanished_sample=tuple(vanished_ids),
        )

    def quotes_as_of(self, run_id: int, max_rank: int) -> list[PriceQuote]:
        rows = self._connection.execute(SELECT_QUOTES_AS_OF, {"run_id": run_id, "max_rank": max_rank})
        return [
            PriceQuote(symbol, source, price, rank, asset, observed)
            for symbol, source, price, rank, asset, observed in rows
        ]

    def prune_observations(self, source: str, keep_runs: int) -> None:
        self._connection.execute(PRUNE_OBSERVATIONS, {"source": source, "keep": keep_runs})

    def latest_payloads(self, source: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        query = sql.SQL(SELECT_LATEST_PAYLOADS).format(raw=sql.Identifier(raw_table_for(source)))
        rows = self._connection.execute(query, {"source": source, "ids": list(record_ids)})
        return {record_id: dict(payload) for record_id, payload in rows}

    def _ensure_staging(self, cursor: psycopg.Cursor) -> None:
        """The temporary staging tables live as long as the pooled connection: asking whether
        they exist is one catalog lookup, where `CREATE ... IF NOT EXISTS` cost ~7 ms a batch."""
        if self._staging_ready:
            return
        found = cursor.execute(STAGING_EXISTS).fetchone()
        if not (found and found[0]):
            columns = sql.SQL(", ").join(map(sql.Identifier, UNIFIED_COLUMNS))
            cursor.execute(sql.SQL(CREATE_STAGING).format(columns=columns))
        self._staging_ready = True


def _upsert_statement(raw_table: sql.Identifier, snapshots: bool) -> sql.Composed:
    """The upsert of a batch staged; of a provider's snapshots (`snapshots`), moving the
    observations of the records it updates."""
    columns = [sql.Identifier(name) for name in UNIFIED_COLUMNS]
    updatable = [name for name in UNIFIED_COLUMNS if name not in ("source", "source_record_id")]
    return sql.SQL(UPSERT_UNIFIED).format(
        moved_columns=sql.SQL(MOVED_COLUMNS if snapshots else ""),
        move=sql.SQL(MOVE_SNAPSHOTS if snapshots else ""),
        columns=sql.SQL(", ").join(columns),
        staged=sql.SQL(", ").join(sql.SQL("s.{}").format(column) for column in columns),
        raw_id=sql.SQL(RAW_ID_OF_STAGED).format(raw=raw_table),
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in updatable
        ),
    )


@attrs.frozen
class _Copies:
    """A batch's normalized and quarantined rows as COPY payloads for staging (in COPY's text
    format, or CSV as Arrow writes a block's columns: `form`)."""

    unified: bytes
    quarantine: bytes
    records: int
    quarantined: int
    direct: bool = False  # every raw row new: the batch may be COPYed straight into unified_data
    form: str = ""  # "" COPY's text format; CSV: Arrow's CSV


@contextmanager
def _savepoint(connection: psycopg.Connection) -> Iterator[None]:
    """A savepoint inside the unit of work's transaction, whatever ran before it. (psycopg's
    `transaction()` on a connection with no transaction open would BEGIN one of its own and
    COMMIT it on the way out, ahead of the unit of work's commit; any statement opens the unit of
    work's transaction, so one is sent first when none is open.)"""
    if connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        connection.execute("SELECT 1")
    with connection.transaction():
        yield


def _one_source(sources: Iterable[str]) -> str:
    distinct = set(sources)
    if len(distinct) != 1:
        raise ValueError(f"a batch holds one source, got {sorted(distinct)}")
    return distinct.pop()


def _raw_row(raw: RawRecord) -> tuple[str, ...]:
    """A raw row: a line of a file as it was read, anything else as its payload."""
    kept_as_line = raw.line is not None
    return (
        copy_text.text(raw.source),
        copy_text.text(raw.source_record_id),
        raw.checksum,
        copy_text.NULL if kept_as_line else _payload_field(raw),
        copy_text.moment(raw.fetched_at),
        copy_text.text(raw.line),
        copy_text.number(raw.position if kept_as_line else None),
    )


# what a field no column names holds: an empty list or document, else NULL
_EMPTY = {"tags": "{}", "mentions": "{}", "extra": "{}"}
CSV = " (FORMAT csv)"  # a COPY of CSV (Arrow's: a null unquoted and empty, text quoted)


def _allocated(cursor: psycopg.Cursor[Any], raw_table: str, count: int) -> list[int]:
    """`count` new ids of the raw table, in one round trip."""
    row = cursor.execute(ALLOCATE_RAW_IDS, {"table": raw_table, "count": count}).fetchone()
    return [int(found) for found in row[0]] if row and row[0] else []


def _in(statement: sql.Composed, form: str) -> sql.Composed:
    return sql.Composed([statement, sql.SQL(form)]) if form else statement


def _arrow(column: TextColumn) -> pa.Array:
    return column if isinstance(column, pa.Array) else pa.array(column.to_pylist(), pa.string())


def _same(value: str | None, count: int) -> pa.Array:
    return pa.nulls(count, pa.string()) if value is None else pa.array([value] * count, pa.string())


def _csv(columns: dict[str, pa.Array]) -> bytes:
    """Columns as CSV rows, in their order, by Arrow's writer (strings quoted, nulls empty)."""
    sink = io.BytesIO()
    pa_csv.write_csv(
        pa.table(columns), sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    )
    return sink.getvalue()


def _payload_field(raw: RawRecord) -> str:
    return copy_text.text(raw.payload_json or canonical_json(raw.payload))


def _raw_id(known: dict[tuple[str, str], int], record_id: str, checksum: str) -> str:
    found = known.get((record_id, checksum))
    return copy_text.NULL if found is None else str(found)


def _quarantine_row(item: QuarantinedRecord, known: dict[tuple[str, str], int]) -> tuple[str, ...]:
    raw = item.raw
    return (
        copy_text.text(raw.source),
        copy_text.text(raw.source_record_id),
        raw.checksum,
        copy_text.text(item.reason),
        _payload_field(raw),  # what a reader of the quarantine shows: the cells by name
        _raw_id(known, raw.source_record_id, raw.checksum),  # its line, replayed from there
    )


@attrs.frozen
class _RawIds:
    """A receipt's content: the raw ids known (by record id and checksum, or a block's in order),
    and whether every payload was stored by this call (then the rows may go straight in)."""

    ids: dict[tuple[str, str], int] | tuple[int, ...]
    fresh: bool


def _text_array(values: Sequence[str]) -> str:
    """A `text[]` literal of `values`, each quoted: escaped as one text, where a line never holds
    U+0000 (the ETL replaces it before storing: `domain.records.without_nul`)."""
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:
        raise ValueError("a line holding U+0000 cannot be stored as text")
    escaped = joined.replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + escaped.replace("\x00", '","') + '"}'


def _unified_row(record: UnifiedRecord) -> tuple[str, ...]:
    """In the order of UNIFIED_COLUMNS."""
    text, number, moment = copy_text.text, copy_text.number, copy_text.moment
    return (
        record.source_type.value,
        text(record.source),
        text(record.source_record_id),
        record.kind.value,
        text(record.title),
        text(record.description),
        text(record.author),
        text(record.category),
        copy_text.text_array(record.tags),
        text(record.url),
        moment(record.published_at),
        text(record.symbol),
        text(record.asset_name),
        number(record.price_usd),
        number(record.market_cap_usd),
        number(record.volume_24h_usd),
        number(record.rank),
        number(record.pct_change_24h),
        moment(record.observed_at),
        copy_text.document(record.extra),
        record.checksum,
        copy_text.text_array(record.mentions),
        number(record.asset_id),
        text(record.quote_currency),
        number(record.price),
        number(record.open_usd),
        number(record.high_usd),
        number(record.low_usd),
        number(record.bar_seconds),
    )


# the share of a table (or the number of rows) written by one run past which its
# statistics are refreshed at once rather than left to autovacuum
ANALYZE_SHARE = 0.1
ANALYZE_ROWS = 100_000
SELECT_ESTIMATED_ROWS = (
    "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'unified_data'::regclass"
)


# The bars observed before the retention's cutoff: a record's bar with its record (migration
# 0022), a snapshot observation alone; the tables' triggers fold the candles they were in again.
# Market records are published when observed: the range on `published_at` walks its index, not
# the table; the snapshots' range their block range index.
DELETE_BARS_BEFORE = """
WITH records AS (
    DELETE FROM unified_data
    WHERE published_at < %(cutoff)s AND observed_at < %(cutoff)s
      AND kind = 'market' AND asset_id IS NOT NULL AND price_usd IS NOT NULL AND strpos(source, ':') > 0
    RETURNING 1
), snapshots AS (
    DELETE FROM market_snapshots WHERE observed_at < %(cutoff)s RETURNING 1
)
SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM snapshots)
"""


class PostgresMaintenance:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def drop_history_before(self, cutoff: datetime) -> int:
        row = self._connection.execute(DELETE_BARS_BEFORE, {"cutoff": cutoff}).fetchone()
        return int(row[0]) if row else 0

    def refresh_after_load(self, rows_written: int) -> bool:
        """Right after a bulk load the planner still believes the tables small: the API's first
        queries would walk the wrong index until autovacuum got round to it. ANALYZE the tables a
        run writes when it wrote many rows, or a large share of them."""
        if rows_written <= 0:
            return False
        row = self._connection.execute(SELECT_ESTIMATED_ROWS).fetchone()
        estimated = int(row[0]) if row else 0
        if rows_written < ANALYZE_ROWS and rows_written < ANALYZE_SHARE * estimated:
            return False
        # the tables the API's plans depend on; raw rows are only ever reached by id
        for table in ("unified_data", "market_snapshots", "market_candles"):
            self._connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        return True
