"""Health and readiness: what an operator's probe and `/health` are told."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import attrs

from application.errors import StoreUnavailable
from application.ports import HealthProbe, ReplicaMonitor, ReportingUnits, SourceRunLedger
from domain.health import Health, KindHealth, ReplicaState, judge, replica_reasons
from domain.runs import RunStatus

__all__ = ["Health", "HealthReport", "ReadinessReport", "check_health", "check_readiness"]


@attrs.frozen
class HealthReport:
    status: Health
    database: bool
    etl_last_run: datetime | None
    etl_last_status: RunStatus | None
    sources: tuple[KindHealth, ...] = ()
    replicas: tuple[ReplicaState, ...] = ()
    replica_reasons: tuple[str, ...] = ()

    @property
    def reasons(self) -> list[str]:
        kinds = [f"{kind.kind}: {reason}" for kind in self.sources for reason in kind.reasons]
        return [*kinds, *self.replica_reasons]


@attrs.frozen
class ReadinessReport:
    database: bool
    pending_migrations: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return self.database and not self.pending_migrations


def check_health(
    probe: HealthProbe,
    uow_factory: ReportingUnits,
    ledger: SourceRunLedger,
    schedules: Mapping[str, timedelta | None],
    now: datetime,
    replicas: ReplicaMonitor | None = None,
    max_replica_lag_seconds: float = 60.0,
) -> HealthReport:
    """Healthy with a reachable database and every enabled source kind healthy (`domain.health`).

    A database that cannot be reached is unhealthy; a kind whose newest run did not succeed,
    that never ran, or whose newest run is older than its schedule allows makes it degraded
    (the API still serves what is stored). Read replicas are shown with their lag; one that
    cannot be reached, accepts writes or lags too far makes it degraded too. With the primary
    down the answer is unhealthy whatever the replicas (they still serve the reads)."""
    standbys = tuple(replicas.replicas()) if replicas is not None else ()
    lagging = tuple(replica_reasons(standbys, max_replica_lag_seconds))
    if not probe.database_reachable():
        return HealthReport(Health.UNHEALTHY, False, None, None, (), standbys, lagging)
    try:
        with uow_factory() as uow:
            last = uow.runs.latest()
        states = ledger.latest_finished()
    except StoreUnavailable:  # gone between the probe and the query
        return HealthReport(Health.UNHEALTHY, False, None, None, (), standbys, lagging)
    status, kinds = judge(schedules, states, now)
    if lagging and status is Health.HEALTHY:
        status = Health.DEGRADED
    return HealthReport(
        status,
        True,
        (last.finished_at or last.started_at) if last else None,
        last.status if last else None,
        kinds,
        standbys,
        lagging,
    )


def check_readiness(probe: HealthProbe) -> ReadinessReport:
    if not probe.database_reachable():
        return ReadinessReport(database=False, pending_migrations=())
    return ReadinessReport(database=True, pending_migrations=tuple(probe.pending_migrations()))
