"""What operators ask of the ETL's state: source statistics, checkpoints, drift findings."""

from __future__ import annotations

from datetime import datetime

import attrs

from application.ports import ReportingUnits
from domain.checkpoints import Checkpoint
from domain.drift import DriftKind, StoredDrift
from domain.runs import SourceStats


def source_stats(uow_factory: ReportingUnits) -> list[SourceStats]:
    with uow_factory() as uow:
        return uow.runs.source_stats()


def list_checkpoints(uow_factory: ReportingUnits) -> list[Checkpoint]:
    with uow_factory() as uow:
        return uow.checkpoints.list()


@attrs.frozen
class EtlFigures:
    """What `/metrics` reports of the ETL, read together."""

    stats: list[SourceStats]
    responses: dict[tuple[str, str], int]
    checkpoints: list[Checkpoint]


def etl_figures(uow_factory: ReportingUnits) -> EtlFigures:
    """Source statistics, provider answers and checkpoints in one unit of work (one connection)."""
    with uow_factory() as uow:
        return EtlFigures(uow.runs.source_stats(), uow.runs.response_totals(), uow.checkpoints.list())


def list_drift_findings(
    uow_factory: ReportingUnits,
    source: str | None = None,
    kind: DriftKind | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[StoredDrift]:
    with uow_factory() as uow:
        return uow.drifts.recent(source, kind, since, limit)
