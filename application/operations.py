"""What operators ask of the ETL's state: source statistics, checkpoints, drift findings."""

from __future__ import annotations

from datetime import datetime

from application.ports import UnitOfWorkFactory
from domain.checkpoints import Checkpoint
from domain.drift import DriftKind, StoredDrift
from domain.runs import SourceStats


def source_stats(uow_factory: UnitOfWorkFactory) -> list[SourceStats]:
    with uow_factory() as uow:
        return uow.runs.source_stats()


def provider_responses(uow_factory: UnitOfWorkFactory) -> dict[tuple[str, str], int]:
    with uow_factory() as uow:
        return uow.runs.response_totals()


def list_checkpoints(uow_factory: UnitOfWorkFactory) -> list[Checkpoint]:
    with uow_factory() as uow:
        return uow.checkpoints.list()


def list_drift_findings(
    uow_factory: UnitOfWorkFactory,
    source: str | None = None,
    kind: DriftKind | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[StoredDrift]:
    with uow_factory() as uow:
        return uow.drifts.recent(source, kind, since, limit)
