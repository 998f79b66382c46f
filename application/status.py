"""Health and readiness: what an operator's probe and `/health` are told."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from application.errors import StoreUnavailable
from application.ports import HealthProbe, UnitOfWorkFactory
from domain.runs import RunStatus


class Health(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@attrs.frozen
class HealthReport:
    status: Health
    database: bool
    etl_last_run: datetime | None
    etl_last_status: RunStatus | None


@attrs.frozen
class ReadinessReport:
    database: bool
    pending_migrations: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return self.database and not self.pending_migrations


def check_health(probe: HealthProbe, uow_factory: UnitOfWorkFactory) -> HealthReport:
    """Healthy with a reachable database and a last run that did not fail or only partly ran.

    A database that cannot be reached is unhealthy; a last run that failed or was partial is
    degraded (the API still serves what is stored).
    """
    if not probe.database_reachable():
        return HealthReport(Health.UNHEALTHY, False, None, None)
    try:
        with uow_factory() as uow:
            last = uow.runs.latest()
    except StoreUnavailable:  # gone between the probe and the query
        return HealthReport(Health.UNHEALTHY, False, None, None)
    if last is None:
        return HealthReport(Health.HEALTHY, True, None, None)
    degraded = last.status in (RunStatus.FAILED, RunStatus.PARTIAL)
    return HealthReport(
        Health.DEGRADED if degraded else Health.HEALTHY,
        True,
        last.finished_at or last.started_at,
        last.status,
    )


def check_readiness(probe: HealthProbe) -> ReadinessReport:
    if not probe.database_reachable():
        return ReadinessReport(database=False, pending_migrations=())
    return ReadinessReport(database=True, pending_migrations=tuple(probe.pending_migrations()))
