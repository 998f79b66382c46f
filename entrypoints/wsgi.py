"""The WSGI entry point for gunicorn: `gunicorn 'entrypoints.wsgi:create()'`.

gunicorn calls the factory in each worker after the fork, so every worker opens its own pool.
"""

from __future__ import annotations

import atexit
from datetime import timedelta

import falcon

from entrypoints.api.app import ApiOptions, create_app
from entrypoints.bootstrap import build
from entrypoints.logs import configure_logging
from entrypoints.settings import Settings


def create() -> falcon.App[falcon.Request, falcon.Response]:
    settings = Settings.from_environ()
    # a connection per thread: a request never waits for another thread's
    settings = settings.model_copy(
        update={"db_pool_max_size": max(settings.db_pool_max_size, settings.api_threads)}
    )
    configure_logging(settings.log_level, settings.log_format)
    kaspero = build(settings, serving=True)
    atexit.register(kaspero.close)
    options = ApiOptions(
        api_keys=tuple(settings.api_key_list()),
        reads_need_key=settings.api_read_requires_key,
        source_kinds=kaspero.source_kinds,
        metrics_dir=settings.prometheus_multiproc_dir,
        divergence_pct=settings.divergence_threshold_pct,
        consensus_window=timedelta(minutes=settings.consensus_window_minutes),
        schedules={kind: settings.schedule_minutes(kind) for kind in kaspero.source_kinds},
        enabled_kinds=kaspero.enabled_kinds(),
        metrics_cache_seconds=settings.metrics_cache_seconds,
        trusted_proxies=settings.trusted_proxy_networks(),
        request_budget_seconds=settings.api_request_budget_ms / 1000,
        database_slots=max(1, settings.api_threads - 1),
        replica_max_lag_seconds=settings.replica_max_lag_seconds,
        suspect_bar_pct=settings.suspect_bar_pct,
    )
    return create_app(
        kaspero.reader, kaspero.probe, kaspero.uow_factory, options, kaspero.clock, kaspero.quarantine,
        kaspero.ledger, kaspero.budget, read_uow_factory=kaspero.read_uow_factory, replicas=kaspero.replicas,
        renderer=kaspero.renderer, coverage=kaspero.coverage, backfills=kaspero.backfills,
        plan_backfill=kaspero.backfill,
    )  # fmt: skip
