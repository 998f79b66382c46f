"""Run history and checkpoints in PostgreSQL, on the unit of work's connection."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from domain.checkpoints import Checkpoint
from domain.runs import EtlRun, RunStatus, RunTrigger, SourceCounters, SourceRun, SourceStats

COUNTER_NAMES = tuple(field.name for field in attrs.fields(SourceCounters))

INSERT_RUN = """
INSERT INTO etl_runs (trigger, status, started_at) VALUES (%(trigger)s, 'running', %(started_at)s)
RETURNING id
"""
INSERT_RUN_SOURCE = """
INSERT INTO etl_run_sources (run_id, source, status, started_at)
VALUES (%(run_id)s, %(source)s, 'running', %(started_at)s)
ON CONFLICT (run_id, source) DO NOTHING
"""
ADD_COUNTERS = "UPDATE etl_run_sources SET {assignments} WHERE run_id = %(run_id)s AND source = %(source)s"
FINISH_RUN_SOURCE = """
UPDATE etl_run_sources
SET status = %(status)s, error = %(error)s, finished_at = %(finished_at)s, duration_ms = %(duration_ms)s,
    freshness_seconds = %(freshness_seconds)s
WHERE run_id = %(run_id)s AND source = %(source)s
"""
FINISH_RUN = """
UPDATE etl_runs SET status = %(status)s, error = %(error)s, finished_at = %(finished_at)s
WHERE id = %(run_id)s
"""
SELECT_RUN = "SELECT id, trigger, status, started_at, finished_at, error FROM etl_runs WHERE id = %(run_id)s"
SELECT_LATEST_RUN = """
SELECT id, trigger, status, started_at, finished_at, error FROM etl_runs ORDER BY id DESC LIMIT 1
"""
SELECT_RUN_SOURCES = "SELECT * FROM etl_run_sources WHERE run_id = ANY(%(run_ids)s) ORDER BY run_id, source"
SELECT_RUNS = """
SELECT id, trigger, status, started_at, finished_at, error FROM etl_runs r
WHERE (%(status)s::text IS NULL OR r.status = %(status)s)
  AND (%(before)s::bigint IS NULL OR r.id < %(before)s)
  AND (%(source)s::text IS NULL
       OR EXISTS (SELECT 1 FROM etl_run_sources s WHERE s.run_id = r.id AND s.source = %(source)s))
ORDER BY id DESC
LIMIT %(limit)s
"""

SELECT_SOURCE_STATS = """
SELECT source, count(*) AS runs,
       {sums},
       max(finished_at) FILTER (WHERE status = 'success') AS last_success_at,
       max(finished_at) FILTER (WHERE status = 'failed') AS last_failure_at,
       (array_agg(error ORDER BY run_id DESC) FILTER (WHERE error IS NOT NULL))[1] AS last_error,
       avg(duration_ms) FILTER (WHERE finished_at IS NOT NULL) AS average_duration_ms,
       (array_agg(duration_ms ORDER BY run_id DESC) FILTER (WHERE finished_at IS NOT NULL))[1] AS last_duration_ms,
       jsonb_build_object(
           'running', count(*) FILTER (WHERE status = 'running'),
           'success', count(*) FILTER (WHERE status = 'success'),
           'partial', count(*) FILTER (WHERE status = 'partial'),
           'failed', count(*) FILTER (WHERE status = 'failed'),
           'skipped', count(*) FILTER (WHERE status = 'skipped')
       ) AS runs_by_status
FROM etl_run_sources
GROUP BY source
ORDER BY source
"""

ADD_RESPONSES = """
INSERT INTO provider_responses AS p (run_id, source, status, responses)
SELECT %(run_id)s, %(source)s, key, value::bigint FROM jsonb_each_text(%(responses)s::jsonb)
ON CONFLICT (run_id, source, status) DO UPDATE SET responses = p.responses + EXCLUDED.responses
"""
SELECT_RESPONSE_TOTALS = "SELECT source, status, sum(responses)::bigint FROM provider_responses GROUP BY 1, 2"

SELECT_RUNNING_BEFORE = (
    "SELECT id FROM etl_runs WHERE status = 'running' AND started_at < %(cutoff)s ORDER BY id"
)
ABANDON_RUN = """
UPDATE etl_runs SET status = 'failed', error = %(error)s, finished_at = %(at)s
WHERE id = %(run_id)s AND status = 'running';
"""
ABANDON_RUN_SOURCES = """
UPDATE etl_run_sources SET status = 'failed', error = %(error)s, finished_at = %(at)s
WHERE run_id = %(run_id)s AND status = 'running'
"""

SELECT_CHECKPOINT = "SELECT source, cursor, run_id, updated_at FROM checkpoints WHERE source = %(source)s"
SELECT_CHECKPOINTS = "SELECT source, cursor, run_id, updated_at FROM checkpoints ORDER BY source"
UPSERT_CHECKPOINT = """
INSERT INTO checkpoints (source, cursor, run_id, updated_at)
VALUES (%(source)s, %(cursor)s, %(run_id)s, %(updated_at)s)
ON CONFLICT (source) DO UPDATE
SET cursor = EXCLUDED.cursor, run_id = EXCLUDED.run_id, updated_at = EXCLUDED.updated_at
"""


class PostgresRunRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def start(self, trigger: RunTrigger, started_at: datetime) -> int:
        row = self._connection.execute(
            INSERT_RUN, {"trigger": trigger.value, "started_at": started_at}
        ).fetchone()
        assert row is not None
        return int(row[0])

    def start_source(self, run_id: int, source: str, started_at: datetime) -> None:
        self._connection.execute(
            INSERT_RUN_SOURCE, {"run_id": run_id, "source": source, "started_at": started_at}
        )

    def add_counters(self, run_id: int, source: str, counters: SourceCounters) -> None:
        assignments = ", ".join(f"{name} = {name} + %({name})s" for name in COUNTER_NAMES)
        self._connection.execute(
            ADD_COUNTERS.format(assignments=assignments),  # names come from the attrs class
            {"run_id": run_id, "source": source, **attrs.asdict(counters)},
        )

    def finish_source(
        self,
        run_id: int,
        source: str,
        status: RunStatus,
        error: str | None,
        finished_at: datetime,
        duration_ms: int,
        freshness_seconds: float | None = None,
    ) -> None:
        self._connection.execute(
            FINISH_RUN_SOURCE,
            {
                "run_id": run_id,
                "source": source,
                "status": status.value,
                "error": error,
                "finished_at": finished_at,
                "duration_ms": duration_ms,
                "freshness_seconds": freshness_seconds,
            },
        )

    def finish(self, run_id: int, status: RunStatus, error: str | None, finished_at: datetime) -> None:
        self._connection.execute(
            FINISH_RUN,
            {"run_id": run_id, "status": status.value, "error": error, "finished_at": finished_at},
        )

    def get(self, run_id: int) -> EtlRun | None:
        return self._run_from(SELECT_RUN, {"run_id": run_id})

    def latest(self) -> EtlRun | None:
        return self._run_from(SELECT_LATEST_RUN, {})

    def recent(
        self,
        limit: int,
        status: RunStatus | None = None,
        source: str | None = None,
        before: int | None = None,
    ) -> list[EtlRun]:
        params = {
            "limit": limit,
            "status": status.value if status else None,
            "source": source,
            "before": before,
        }
        return self._runs_from(SELECT_RUNS, params)

    def source_stats(self) -> list[SourceStats]:
        sums = ", ".join(f"sum({name})::bigint AS {name}" for name in COUNTER_NAMES)
        cursor = self._connection.cursor(row_factory=dict_row)
        return [
            SourceStats(
                source=row["source"],
                runs=int(row["runs"]),
                totals=SourceCounters(**{name: int(row[name]) for name in COUNTER_NAMES}),
                last_success_at=row["last_success_at"],
                last_failure_at=row["last_failure_at"],
                last_error=row["last_error"],
                average_duration_ms=(
                    float(row["average_duration_ms"]) if row["average_duration_ms"] is not None else None
                ),
                last_duration_ms=row["last_duration_ms"],
                runs_by_status={key: int(value) for key, value in row["runs_by_status"].items()},
            )
            for row in cursor.execute(SELECT_SOURCE_STATS.format(sums=sums))  # names from the attrs class
        ]

    def running_since_before(self, cutoff: datetime) -> list[int]:
        return [int(row[0]) for row in self._connection.execute(SELECT_RUNNING_BEFORE, {"cutoff": cutoff})]

    def abandon(self, run_id: int, error: str, finished_at: datetime) -> None:
        params = {"run_id": run_id, "error": error, "at": finished_at}
        self._connection.execute(ABANDON_RUN, params)
        self._connection.execute(ABANDON_RUN_SOURCES, params)

    def add_responses(self, run_id: int, source: str, responses: Mapping[str, int]) -> None:
        self._connection.execute(
            ADD_RESPONSES, {"run_id": run_id, "source": source, "responses": json.dumps(dict(responses))}
        )

    def response_totals(self) -> dict[tuple[str, str], int]:
        return {
            (source, status): int(total)
            for source, status, total in self._connection.execute(SELECT_RESPONSE_TOTALS)
        }

    def _run_from(self, query: str, params: dict[str, Any]) -> EtlRun | None:
        runs = self._runs_from(query, params)
        return runs[0] if runs else None

    def _runs_from(self, query: str, params: dict[str, Any]) -> list[EtlRun]:
        cursor = self._connection.cursor(row_factory=dict_row)
        rows = cursor.execute(query, params).fetchall()
        if not rows:
            return []
        by_run: dict[int, list[SourceRun]] = {int(row["id"]): [] for row in rows}
        for source_row in cursor.execute(SELECT_RUN_SOURCES, {"run_ids": list(by_run)}):
            by_run[int(source_row["run_id"])].append(source_run_from_row(source_row))
        return [run_from_row(row, by_run[int(row["id"])]) for row in rows]


def run_from_row(row: dict[str, Any], sources: list[SourceRun]) -> EtlRun:
    return EtlRun(
        id=int(row["id"]),
        trigger=RunTrigger(row["trigger"]),
        started_at=row["started_at"],
        status=RunStatus(row["status"]),
        finished_at=row["finished_at"],
        error=row["error"],
        sources=tuple(sources),
    )


def source_run_from_row(row: dict[str, Any]) -> SourceRun:
    return SourceRun(
        source=row["source"],
        counters=SourceCounters(**{name: int(row[name]) for name in COUNTER_NAMES}),
        status=RunStatus(row["status"]),
        error=row["error"],
        freshness_seconds=row["freshness_seconds"],
    )


class PostgresCheckpointRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def get(self, source: str) -> Checkpoint | None:
        row = self._connection.execute(SELECT_CHECKPOINT, {"source": source}).fetchone()
        return checkpoint_from_row(row) if row else None

    def save(self, checkpoint: Checkpoint) -> None:
        self._connection.execute(
            UPSERT_CHECKPOINT,
            {
                "source": checkpoint.source,
                "cursor": Jsonb(checkpoint.cursor),
                "run_id": checkpoint.run_id,
                "updated_at": checkpoint.updated_at,
            },
        )

    def list(self) -> list[Checkpoint]:
        return [checkpoint_from_row(row) for row in self._connection.execute(SELECT_CHECKPOINTS)]


def checkpoint_from_row(row: tuple[Any, ...]) -> Checkpoint:
    source, cursor, run_id, updated_at = row
    return Checkpoint(source=source, cursor=dict(cursor), run_id=int(run_id), updated_at=updated_at)
