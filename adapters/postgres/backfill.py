"""Backfill jobs and their windows in PostgreSQL: a queue any number of workers share.

A window is taken with `FOR UPDATE SKIP LOCKED` (two workers asking at once get two windows,
never one twice), marked `running` with the run that took it, and settled by that run once its
bars are committed. A `running` window whose run is no longer `running` (its process died and
`close_abandoned_runs` closed the run) is taken again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.postgres.pooling import Lender, reading, retried_once, store_errors
from domain.assets import Interval
from domain.backfill import (
    BackfillJob,
    BackfillRequest,
    PlannedWindow,
    Window,
    WindowCounts,
    WindowState,
)
from domain.coverage import Span

INSERT_JOB = """
INSERT INTO backfill_jobs (symbols, sources, interval, since, until, gaps_only, problems, created_at)
VALUES (%(symbols)s, %(sources)s, %(interval)s, %(since)s, %(until)s, %(gaps_only)s, %(problems)s, %(now)s)
RETURNING id
"""
COPY_WINDOWS = (
    "COPY backfill_windows (job_id, asset_id, kind, provider_id, interval, starts_at, ends_at) FROM STDIN"
)
# a window is free when pending, or running for a run that is over (its process died)
FREE = """(w.state = 'pending' OR (w.state = 'running' AND NOT EXISTS (
    SELECT 1 FROM etl_runs r WHERE r.id = w.run_id AND r.status = 'running')))"""
CLAIM = f"""
WITH next AS (
    SELECT w.id FROM backfill_windows w
    WHERE w.kind = %(kind)s AND w.interval = %(interval)s AND w.state IN ('pending', 'running') AND {FREE}
    ORDER BY w.job_id, w.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE backfill_windows w SET state = 'running', run_id = %(run_id)s, attempts = w.attempts + 1
FROM next WHERE w.id = next.id
RETURNING w.id, w.job_id, w.asset_id, (SELECT symbol FROM assets a WHERE a.id = w.asset_id),
          w.kind, w.provider_id, w.interval, w.starts_at, w.ends_at, w.attempts
"""
SETTLE = """
UPDATE backfill_windows SET state = %(state)s, bars = %(bars)s, requests = requests + %(requests)s,
    error = %(error)s, settled_at = %(now)s
WHERE id = %(id)s
"""
RELEASE = """
UPDATE backfill_windows SET
    state = CASE WHEN attempts >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
    requests = requests + 1, error = %(error)s,
    settled_at = CASE WHEN attempts >= %(max_attempts)s THEN %(now)s END
WHERE id = %(id)s
"""
PENDING = f"""
SELECT w.kind, w.interval, count(*) FROM backfill_windows w
WHERE w.state IN ('pending', 'running') AND {FREE}
GROUP BY 1, 2 ORDER BY 1, 2
"""
EMPTY = """
SELECT starts_at, ends_at FROM backfill_windows
WHERE asset_id = %(asset_id)s AND kind = %(kind)s AND interval = %(interval)s AND state = 'empty'
ORDER BY starts_at
"""
JOBS = """
SELECT j.id, j.symbols, j.sources, j.interval, j.since, j.until, j.gaps_only, j.problems, j.created_at,
       count(w.id) FILTER (WHERE w.state = 'pending'),
       count(w.id) FILTER (WHERE w.state = 'running'),
       count(w.id) FILTER (WHERE w.state = 'done'),
       count(w.id) FILTER (WHERE w.state = 'empty'),
       count(w.id) FILTER (WHERE w.state = 'refused'),
       count(w.id) FILTER (WHERE w.state = 'failed'),
       coalesce(sum(w.bars), 0), coalesce(sum(w.requests), 0),
       (array_agg(DISTINCT w.error) FILTER (WHERE w.error IS NOT NULL AND w.state IN ('refused', 'failed')))[1:10],
       max(w.settled_at)
FROM backfill_jobs j LEFT JOIN backfill_windows w ON w.job_id = j.id
WHERE {where}
GROUP BY j.id ORDER BY j.id DESC LIMIT %(limit)s
"""


class PostgresBackfillQueue:
    def __init__(self, pool: Lender) -> None:
        self._pool = pool

    def create(
        self,
        request: BackfillRequest,
        windows: Sequence[PlannedWindow],
        problems: Sequence[str],
        now: datetime,
    ) -> int:
        params = {
            "symbols": list(request.symbols),
            "sources": list(request.kinds),
            "interval": request.interval.value,
            "since": request.since,
            "until": request.until,
            "gaps_only": request.gaps_only,
            "problems": list(problems),
            "now": now,
        }
        with store_errors(), self._pool.connection() as connection, connection.cursor() as cursor:
            row = cursor.execute(INSERT_JOB, params).fetchone()
            assert row is not None
            job_id = int(row[0])
            with cursor.copy(COPY_WINDOWS) as copy:
                for window in windows:
                    target = window.target
                    copy.write_row(
                        (job_id, target.asset_id, target.kind, target.provider_id, window.interval.value,
                         window.start, window.end)
                    )  # fmt: skip
        return job_id

    def claim(self, kind: str, interval: Interval, run_id: int) -> Window | None:
        with store_errors(), self._pool.connection() as connection:
            row = connection.execute(
                CLAIM, {"kind": kind, "interval": Interval(interval).value, "run_id": run_id}
            ).fetchone()
        if row is None:
            return None
        id_, job_id, asset_id, symbol, kind_, provider_id, interval_, start, end, attempts = row
        return Window(
            id=id_, job_id=job_id, asset_id=asset_id, symbol=symbol or "", kind=kind_,
            provider_id=provider_id, interval=Interval(interval_), start=start, end=end,
            state=WindowState.RUNNING, attempts=attempts,
        )  # fmt: skip

    def settle(
        self, window_id: int, state: WindowState, bars: int, requests: int, error: str | None, now: datetime
    ) -> None:
        params = {"id": window_id, "state": state.value, "bars": bars, "requests": requests, "error": error,
                  "now": now}  # fmt: skip
        with store_errors(), self._pool.connection() as connection:
            connection.execute(SETTLE, params)

    def release(self, window_id: int, error: str, max_attempts: int, now: datetime) -> None:
        params = {"id": window_id, "error": error, "max_attempts": max_attempts, "now": now}
        with store_errors(), self._pool.connection() as connection:
            connection.execute(RELEASE, params)

    @retried_once
    def pending(self) -> list[tuple[str, Interval, int]]:
        with reading(self._pool) as connection:
            return [
                (kind, Interval(interval), int(count))
                for kind, interval, count in connection.execute(PENDING)
            ]

    @retried_once
    def empty_ranges(self, asset_id: int, kind: str, interval: Interval) -> list[Span]:
        params = {"asset_id": asset_id, "kind": kind, "interval": Interval(interval).value}
        step = Interval(interval).step
        with reading(self._pool) as connection:
            return [
                Span(start, end, (end - start) // step) for start, end in connection.execute(EMPTY, params)
            ]

    @retried_once
    def job(self, job_id: int) -> BackfillJob | None:
        found = self._jobs("j.id = %(id)s", {"id": job_id, "limit": 1})
        return found[0] if found else None

    @retried_once
    def jobs(self, limit: int) -> list[BackfillJob]:
        return self._jobs("TRUE", {"limit": limit})

    def _jobs(self, where: str, params: dict[str, Any]) -> list[BackfillJob]:
        with reading(self._pool) as connection:
            rows = connection.execute(JOBS.format(where=where), params).fetchall()
        return [_job(row) for row in rows]


def _job(row: Sequence[Any]) -> BackfillJob:
    (id_, symbols, sources, interval, since, until, gaps_only, problems, created_at,
     pending, running, done, empty, refused, failed, bars, requests, errors, settled_at) = row  # fmt: skip
    counts = WindowCounts(pending, running, done, empty, refused, failed)
    return BackfillJob(
        id=id_,
        request=BackfillRequest(tuple(symbols), tuple(sources), Interval(interval), since, until, gaps_only),
        created_at=created_at,
        windows=counts,
        bars=int(bars),
        requests=int(requests),
        problems=tuple(problems),
        errors=tuple(errors or ()),
        finished_at=(settled_at or created_at) if counts.settled == counts.total else None,
    )
