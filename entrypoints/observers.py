"""What the ETL tells the outside world: structured log lines, one event per line."""

from __future__ import annotations

import attrs
import structlog

from domain.drift import DriftFinding
from domain.runs import RunStatus, SourceCounters

logger = structlog.get_logger("kaspero.etl")


class LoggingObserver:
    def drift_found(self, source: str, run_id: int, finding: DriftFinding) -> None:
        logger.warning(
            "schema_drift",
            source=source,
            run_id=run_id,
            kind=finding.kind.value,
            field=finding.field,
            candidate=finding.candidate or None,
            confidence=finding.confidence,
            auto_mapped=finding.auto_mapped,
        )

    def batch_committed(self, source: str, run_id: int, counters: SourceCounters) -> None:
        logger.debug("batch_committed", source=source, run_id=run_id, **attrs.asdict(counters))

    def source_finished(self, source: str, run_id: int, status: RunStatus, error: str | None) -> None:
        log = logger.info if status is RunStatus.SUCCESS else logger.warning
        log("source_finished", source=source, run_id=run_id, status=status.value, error=error)
