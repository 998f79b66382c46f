"""Schema drift findings in PostgreSQL: one row per (source, kind, field, candidate)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from domain.drift import DriftFinding, DriftKind, StoredDrift

UPSERT_FINDINGS = """
INSERT INTO schema_drifts AS d (source, kind, field, candidate, confidence, auto_mapped, sample_value,
                                evidence, first_run_id, last_run_id, first_seen, last_seen, seen_count)
SELECT %(source)s, f.kind, f.field, f.candidate, f.confidence, f.auto_mapped, f.sample_value, f.evidence,
       %(run_id)s, %(run_id)s, %(seen_at)s, %(seen_at)s, 1
FROM jsonb_to_recordset(%(findings)s::jsonb)
     AS f(kind text, field text, candidate text, confidence numeric, auto_mapped boolean,
          sample_value jsonb, evidence jsonb)
ON CONFLICT (source, kind, field, candidate) DO UPDATE SET
    confidence = EXCLUDED.confidence,
    auto_mapped = EXCLUDED.auto_mapped,
    sample_value = EXCLUDED.sample_value,
    evidence = EXCLUDED.evidence,
    last_run_id = EXCLUDED.last_run_id,
    last_seen = EXCLUDED.last_seen,
    seen_count = d.seen_count + 1
"""
SELECT_FINDINGS = """
SELECT * FROM schema_drifts
WHERE (%(source)s::text IS NULL OR source = %(source)s)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(since)s::timestamptz IS NULL OR last_seen >= %(since)s)
ORDER BY last_seen DESC, id DESC
LIMIT %(limit)s
"""


class PostgresDriftRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def record(self, source: str, run_id: int, findings: Sequence[DriftFinding], seen_at: datetime) -> None:
        if not findings:
            return
        rows = [
            {
                "kind": finding.kind.value,
                "field": finding.field,
                "candidate": finding.candidate,
                "confidence": finding.confidence,
                "auto_mapped": finding.auto_mapped,
                "sample_value": finding.sample_value,
                "evidence": dict(finding.evidence),
            }
            for finding in findings
        ]
        self._connection.execute(
            UPSERT_FINDINGS,
            {
                "source": source,
                "run_id": run_id,
                "seen_at": seen_at,
                "findings": json.dumps(rows, default=str),
            },
        )

    def recent(
        self,
        source: str | None = None,
        kind: DriftKind | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredDrift]:
        cursor = self._connection.cursor(row_factory=dict_row)
        params = {"source": source, "kind": kind.value if kind else None, "since": since, "limit": limit}
        return [stored_drift_from_row(row) for row in cursor.execute(SELECT_FINDINGS, params)]


def stored_drift_from_row(row: dict[str, Any]) -> StoredDrift:
    return StoredDrift(
        source=row["source"],
        finding=DriftFinding(
            kind=DriftKind(row["kind"]),
            field=row["field"],
            candidate=row["candidate"],
            confidence=float(row["confidence"]),
            auto_mapped=bool(row["auto_mapped"]),
            sample_value=row["sample_value"],
            evidence=dict(row["evidence"] or {}),
        ),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        seen_count=int(row["seen_count"]),
        first_run_id=int(row["first_run_id"]),
        last_run_id=int(row["last_run_id"]),
    )
