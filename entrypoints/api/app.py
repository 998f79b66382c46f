"""The Falcon application factory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import falcon
import falcon.media

from application.ports import (
    BackfillQueue,
    Clock,
    CoverageReader,
    HealthProbe,
    HistoryRenderer,
    QuarantineRecords,
    Records,
    ReplicaMonitor,
    SourceRunLedger,
    UnitOfWorkFactory,
)
from application.status import HealthReport, check_health
from domain.health import SourceRunState
from entrypoints.api import errors
from entrypoints.api.auth import ApiKeyGuard
from entrypoints.api.clients import ClientSide, Network
from entrypoints.api.declared import id_segment
from entrypoints.api.docs import install_docs
from entrypoints.api.metrics import metrics_setup
from entrypoints.api.middleware import HttpHygiene, RequestBudget, RequestContext
from entrypoints.api.openapi import OpenApiResource
from entrypoints.api.render import dumps
from entrypoints.api.resources import (
    AssetsResource,
    BackfillsResource,
    CheckpointsResource,
    CompareRunsResource,
    DataResource,
    HealthResource,
    HistoryResource,
    LiveResource,
    QuarantineReplayResource,
    QuarantineResource,
    ReadyResource,
    RunRequestsResource,
    RunsResource,
    SchemaDriftsResource,
    StatsResource,
)
from entrypoints.version import kaspero_version
from entrypoints.web.pages import Dashboard, DashboardOptions, install_dashboard


@attrs.frozen
class ApiOptions:
    api_keys: tuple[str, ...] = ()
    reads_need_key: bool = False
    source_kinds: tuple[str, ...] = ()  # the registered kinds (`entrypoints.bootstrap.KINDS`)
    version: str | None = None
    metrics_dir: Path | None = None
    divergence_pct: float = 5.0
    consensus_window: timedelta | None = timedelta(minutes=15)
    schedules: Mapping[str, float] = attrs.field(factory=dict)  # source kind -> minutes, for the dashboard
    enabled_kinds: tuple[str, ...] = ()  # the kinds `/health` judges (`ETL_SOURCES`)
    metrics_cache_seconds: float = 15.0
    trusted_proxies: tuple[Network, ...] = ()
    request_budget_seconds: float = 5.0
    database_slots: int | None = None  # requests touching the database at once (API_THREADS - 1)
    replica_max_lag_seconds: float = 60.0  # a read replica further behind makes health degraded
    suspect_bar_pct: Decimal = Decimal(10)  # SUSPECT_BAR_PCT


def create_app(
    reader: Records,
    probe: HealthProbe,
    uow_factory: UnitOfWorkFactory,
    options: ApiOptions | None = None,
    clock: Clock | None = None,
    quarantine: QuarantineRecords | None = None,
    ledger: SourceRunLedger | None = None,
    budget: Callable[[float], AbstractContextManager[None]] | None = None,
    read_uow_factory: UnitOfWorkFactory | None = None,
    replicas: ReplicaMonitor | None = None,
    renderer: HistoryRenderer | None = None,
    coverage: CoverageReader | None = None,
    backfills: BackfillQueue | None = None,
    plan_backfill: Callable[..., int] | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The API over its collaborators; `entrypoints.wsgi.create` passes the production ones.

    Without a `ledger` no run history is known: every enabled kind counts as never run.
    `read_uow_factory` serves the reads that need not see their own writes (assets, histories,
    statistics, drift, the dashboard's lists: the read replicas when configured); writes, and
    what follows them (`/runs`, `/run-requests`), and health keep `uow_factory`."""
    options = options or ApiOptions()
    now: Clock = clock or (lambda: datetime.now(UTC))
    schedules = {
        kind: timedelta(minutes=options.schedules[kind]) if kind in options.schedules else None
        for kind in options.enabled_kinds
    }
    history = ledger or _NoHistory()

    guard = ApiKeyGuard(options.api_keys, options.reads_need_key)

    reads = read_uow_factory or uow_factory

    def health() -> HealthReport:
        return check_health(
            probe, uow_factory, history, schedules, now(), replicas, options.replica_max_lag_seconds
        )

    http_metrics, metrics = metrics_setup(
        uow_factory, options.metrics_dir, options.metrics_cache_seconds, health
    )
    within = RequestBudget(
        budget or (lambda _: nullcontext()), options.request_budget_seconds, options.database_slots
    )
    middleware: list[Any] = [http_metrics, RequestContext(), HttpHygiene(), guard, within]
    app = falcon.App(middleware=middleware)
    json_handler = falcon.media.JSONHandler(dumps=dumps)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[errors.PROBLEM_JSON] = json_handler
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)

    data = DataResource(reader, reader, budget, options.request_budget_seconds)
    app.add_route("/data", data)
    app.add_route(f"/data/{id_segment('record_id')}", data, suffix="item")
    if quarantine is not None:
        app.add_route("/quarantine", QuarantineResource(quarantine, budget, options.request_budget_seconds))
    app.add_route(
        "/quarantine/replay", QuarantineReplayResource(uow_factory, options.source_kinds, now, guard)
    )
    runs = RunsResource(
        uow_factory, options.source_kinds, now, guard, options.divergence_pct, options.consensus_window
    )
    app.add_route("/runs", runs)
    app.add_route(f"/runs/{id_segment('run_id')}", runs, suffix="item")
    app.add_route(f"/runs/{id_segment('run_id')}/anomalies", runs, suffix="anomalies")
    app.add_route("/compare-runs", CompareRunsResource(reads))
    app.add_route(
        f"/run-requests/{id_segment('request_id')}",
        RunRequestsResource(uow_factory),
        suffix="item",
    )
    candles = HistoryResource(
        reads, budget, options.request_budget_seconds, renderer, options.suspect_bar_pct
    )
    app.add_route("/history", candles)
    assets = AssetsResource(
        reads, options.divergence_pct, options.consensus_window, now, candles, coverage, backfills
    )
    app.add_route("/assets", assets)
    app.add_route(f"/assets/{id_segment('asset_id')}", assets, suffix="item")
    app.add_route(f"/assets/{id_segment('asset_id')}/history", assets, suffix="history")
    if coverage is not None:
        app.add_route(f"/assets/{id_segment('asset_id')}/coverage", assets, suffix="coverage")
    if backfills is not None and plan_backfill is not None:
        jobs = BackfillsResource(backfills, plan_backfill, guard, now)
        app.add_route("/backfills", jobs)
        app.add_route(f"/backfills/{id_segment('job_id')}", jobs, suffix="item")
    app.add_route("/stats", StatsResource(reads))
    app.add_route("/checkpoints", CheckpointsResource(reads))
    app.add_route("/schema-drifts", SchemaDriftsResource(reads))
    app.add_route("/health", HealthResource(health, options.version or kaspero_version()))
    app.add_route("/ready", ReadyResource(probe))
    app.add_route("/live", LiveResource())
    app.add_route("/metrics", metrics)
    app.add_route(
        "/openapi.json", OpenApiResource(options.version or kaspero_version(), options.source_kinds)
    )
    install_docs(app)
    dashboard = DashboardOptions(
        schedules=options.schedules,
        divergence_pct=Decimal(str(options.divergence_pct)),
        window=options.consensus_window,
        suspect=options.suspect_bar_pct / 100,
        version=options.version or kaspero_version(),
        clients=ClientSide(options.trusted_proxies),
    )
    install_dashboard(
        app, Dashboard(reader, quarantine, health, reads, dashboard, now, guard, coverage, backfills)
    )
    return app


class _NoHistory:
    def latest_finished(self) -> list[SourceRunState]:
        return []
