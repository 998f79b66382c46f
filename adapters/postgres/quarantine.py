"""The read side of `/quarantine`: quarantined records, newest first, filtered and paged; and
the entries a replay reads again, as the raw records they were."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from adapters.postgres.pooling import Lender, reading, retried_once
from adapters.postgres.reader import contains_pattern
from adapters.postgres.records import raw_table_for
from application.queries import Page, QuarantineQuery
from domain.records import RawRecord, StoredQuarantine

SELECT_QUARANTINE = """
SELECT id, source, source_record_id, reason, payload, first_run_id, last_run_id, created_at, updated_at
FROM quarantine {where}
ORDER BY id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_QUARANTINE = "SELECT count(*) FROM (SELECT 1 FROM quarantine {where} LIMIT %(cap)s) capped"
# oldest first after a key; the raw id the entry remembers (its line, since migration 0020) and
# the fetch time of a raw row kept once per content in the source's raw table (else the entry's
# own time: a line's is its batch's, which the replay does not need); an entry whose record a
# later run stored is left out
SELECT_REPLAYABLE = """
SELECT q.id, q.source_record_id, q.checksum, q.payload, coalesce(r.fetched_at, q.created_at), q.last_run_id,
       q.raw_id
FROM quarantine q
LEFT JOIN {raw} r ON (r.source, r.source_record_id, r.checksum) = (q.source, q.source_record_id, q.checksum)
WHERE q.source = %(source)s AND q.id > %(after)s {reason}
  AND NOT EXISTS (
      SELECT 1 FROM unified_data u
      WHERE u.source = q.source AND u.source_record_id = q.source_record_id AND u.last_run_id > q.last_run_id
  )
ORDER BY q.id
LIMIT %(limit)s
"""
# a count past this is not worth its scan: the page says "at least"
COUNT_CAP = 100_000


class PostgresQuarantineReader:
    def __init__(self, pool: Lender) -> None:
        self._pool = pool

    @retried_once
    def find(self, query: QuarantineQuery) -> Page[StoredQuarantine]:
        where, params = _where(query)
        paged = where
        if query.after_id is not None:
            paged = where + sql.SQL(" AND id < %(after_id)s")
            params["after_id"] = query.after_id
        with reading(self._pool) as connection:
            rows = connection.execute(
                sql.SQL(SELECT_QUARANTINE).format(where=paged),
                {**params, "limit": query.page_size, "offset": query.offset},
            ).fetchall()
            counted = connection.execute(
                sql.SQL(COUNT_QUARANTINE).format(where=where), {**params, "cap": COUNT_CAP}
            ).fetchone()
        total = int(counted[0]) if counted else 0
        items = [quarantine_from_row(row) for row in rows]
        return Page(
            items=items,
            page=query.page,
            page_size=query.page_size,
            total_items=total,
            total_is_estimate=total >= COUNT_CAP,
        )

    @retried_once
    def export_batch(self, query: QuarantineQuery, limit: int) -> list[StoredQuarantine]:
        where, params = _where(query)
        if query.after_id is not None:
            where = where + sql.SQL(" AND id < %(after_id)s")
            params["after_id"] = query.after_id
        with reading(self._pool) as connection:
            rows = connection.execute(
                sql.SQL(SELECT_QUARANTINE).format(where=where), {**params, "limit": limit, "offset": 0}
            ).fetchall()
        return [quarantine_from_row(row) for row in rows]

    @retried_once
    def replayable(
        self, source: str, reason: str | None, after_id: int, limit: int
    ) -> list[tuple[int, RawRecord]]:
        params: dict[str, Any] = {"source": source, "after": after_id, "limit": limit}
        matching = sql.SQL("")
        if reason is not None:
            matching, params["reason"] = sql.SQL("AND q.reason ILIKE %(reason)s"), contains_pattern(reason)
        statement = sql.SQL(SELECT_REPLAYABLE).format(
            raw=sql.Identifier(raw_table_for(source)), reason=matching
        )
        with reading(self._pool) as connection:
            rows = connection.execute(statement, params).fetchall()
        return [
            (
                int(entry),
                RawRecord(
                    source=source,
                    source_record_id=record_id,
                    payload=dict(payload),
                    checksum=checksum,
                    fetched_at=fetched_at,
                    run_id=int(run_id),
                    stored_as=raw_id,  # its line (since migration 0020), not stored again
                ),
            )
            for entry, record_id, checksum, payload, fetched_at, run_id, raw_id in rows
        ]


def _where(query: QuarantineQuery) -> tuple[sql.Composable, dict[str, Any]]:
    conditions: list[sql.Composable] = [sql.SQL("TRUE")]
    params: dict[str, Any] = {}
    if query.source is not None:
        conditions.append(sql.SQL("source = %(source)s"))
        params["source"] = query.source
    if query.run_id is not None:
        conditions.append(sql.SQL("%(run_id)s BETWEEN first_run_id AND last_run_id"))
        params["run_id"] = query.run_id
    if query.reason is not None:
        conditions.append(sql.SQL("reason ILIKE %(reason)s"))
        params["reason"] = contains_pattern(query.reason)
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions)
    return where, params


def quarantine_from_row(row: tuple[Any, ...]) -> StoredQuarantine:
    """A row of SELECT_QUARANTINE's columns as the domain's entry."""
    record_id, source, source_record_id, reason, payload, first_run_id, last_run_id, created, updated = row
    return StoredQuarantine(
        id=record_id,
        source=source,
        source_record_id=source_record_id,
        reason=reason,
        payload=dict(payload),
        first_run_id=first_run_id,
        last_run_id=last_run_id,
        created_at=created,
        updated_at=updated,
    )
