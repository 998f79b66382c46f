"""Scheduling state in PostgreSQL: queued run requests, schedule marks, and advisory locks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from adapters.postgres.pooling import store_errors
from domain.requests import RequestStatus, RunRequest

INSERT_REQUEST = """
INSERT INTO run_requests (sources, requested_at, replay, replay_reason)
VALUES (%(sources)s, %(requested_at)s, %(replay)s, %(replay_reason)s)
RETURNING *
"""
CLAIM_NEXT_REQUEST = """
UPDATE run_requests SET status = 'running', claimed_at = %(claimed_at)s
WHERE id = (
    SELECT id FROM run_requests WHERE status = 'queued' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1
)
RETURNING *
"""
COMPLETE_REQUEST = """
UPDATE run_requests SET status = 'done', run_id = %(run_id)s, finished_at = %(finished_at)s
WHERE id = %(id)s
"""
SELECT_REQUEST = "SELECT * FROM run_requests WHERE id = %(id)s"
SELECT_RUNNING_REQUESTS = (
    "SELECT id FROM run_requests WHERE status = 'running' AND claimed_at < %(cutoff)s ORDER BY id"
)
FAIL_REQUEST = """
UPDATE run_requests SET status = 'failed', error = %(error)s, finished_at = %(at)s
WHERE id = %(id)s AND status = 'running'
"""

SELECT_MARK = "SELECT last_started_at FROM schedule_marks WHERE kind = %(kind)s"
UPSERT_MARK = """
INSERT INTO schedule_marks (kind, last_started_at) VALUES (%(kind)s, %(at)s)
ON CONFLICT (kind) DO UPDATE SET last_started_at = EXCLUDED.last_started_at
"""
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(%(name)s, 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%(name)s, 0))"


class PostgresRunRequestRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def add(
        self,
        sources: Sequence[str],
        requested_at: datetime,
        replay: bool = False,
        replay_reason: str | None = None,
    ) -> RunRequest:
        params = {
            "sources": list(sources),
            "requested_at": requested_at,
            "replay": replay,
            "replay_reason": replay_reason,
        }
        return self._one(INSERT_REQUEST, params)  # type: ignore[return-value]

    def claim_next(self, claimed_at: datetime) -> RunRequest | None:
        return self._one(CLAIM_NEXT_REQUEST, {"claimed_at": claimed_at})

    def complete(self, request_id: int, run_id: int | None, finished_at: datetime) -> None:
        self._connection.execute(
            COMPLETE_REQUEST, {"id": request_id, "run_id": run_id, "finished_at": finished_at}
        )

    def get(self, request_id: int) -> RunRequest | None:
        return self._one(SELECT_REQUEST, {"id": request_id})

    def running_since_before(self, cutoff: datetime) -> list[int]:
        return [int(row[0]) for row in self._connection.execute(SELECT_RUNNING_REQUESTS, {"cutoff": cutoff})]

    def fail(self, request_id: int, error: str, finished_at: datetime) -> None:
        self._connection.execute(FAIL_REQUEST, {"id": request_id, "error": error, "at": finished_at})

    def _one(self, query: str, params: dict[str, Any]) -> RunRequest | None:
        row = self._connection.cursor(row_factory=dict_row).execute(query, params).fetchone()
        return run_request_from_row(row) if row else None


def run_request_from_row(row: dict[str, Any]) -> RunRequest:
    return RunRequest(
        id=int(row["id"]),
        sources=tuple(row["sources"]),
        status=RequestStatus(row["status"]),
        requested_at=row["requested_at"],
        claimed_at=row["claimed_at"],
        finished_at=row["finished_at"],
        run_id=row["run_id"],
        error=row.get("error"),
        replay=bool(row.get("replay")),
        replay_reason=row.get("replay_reason"),
    )


class PostgresScheduleRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def last_started(self, kind: str) -> datetime | None:
        row = self._connection.execute(SELECT_MARK, {"kind": kind}).fetchone()
        return row[0] if row else None

    def mark_started(self, kind: str, started_at: datetime) -> None:
        self._connection.execute(UPSERT_MARK, {"kind": kind, "at": started_at})


class PostgresSourceLocks:
    """Session-level advisory locks, all on one connection of their own, outside the pool.

    Every lock a process holds lives on this one session, so taking locks never borrows from the
    pool the run itself needs (a run of every source once held one pooled connection per source
    and starved its own batches). A name already held in this process is refused, as another
    session would refuse it. When the connection is found broken (the database restarted), it
    is opened again: the locks it held died with it on the server, so they are forgotten here
    too. Any database error reaches the caller, who decides whether to retry.
    """

    def __init__(self, conninfo: str, connect_timeout: float = 5.0) -> None:
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._connection: psycopg.Connection | None = None
        self._held: set[str] = set()
        self._guard = threading.RLock()

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        acquired = self._try(name)
        try:
            yield acquired
        finally:
            if acquired:
                self._release(name)

    def close(self) -> None:
        with self._guard:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._held.clear()

    def _try(self, name: str) -> bool:
        with self._guard, store_errors():
            if name in self._held:
                return False
            row = self._session().execute(TRY_LOCK, {"name": name}).fetchone()
            if row and row[0]:
                self._held.add(name)
                return True
            return False

    def _release(self, name: str) -> None:
        with self._guard:
            self._held.discard(name)
            connection = self._connection
            if connection is None or connection.broken:
                return
            try:
                connection.execute(UNLOCK, {"name": name})
            except psycopg.OperationalError:
                self._drop()  # the lock died with the session on the server

    def _session(self) -> psycopg.Connection:
        connection = self._connection
        if connection is not None and not connection.broken and not connection.closed:
            try:
                connection.execute("SELECT 1")
                return connection
            except psycopg.OperationalError:
                self._drop()
        elif connection is not None:
            self._drop()
        self._connection = psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=max(1, int(self._connect_timeout)),
            application_name="kaspero-locks",
        )
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self._held.clear()
