"""Prometheus: HTTP figures from every gunicorn worker, ETL figures from the database.

HTTP metrics are recorded by each worker; under gunicorn they live in
`PROMETHEUS_MULTIPROC_DIR` (cleaned by `kaspero serve` before start, dead workers marked by
the `child_exit` hook in `entrypoints/gunicorn_config.py`), so `/metrics` sums every worker.

ETL metrics are read from PostgreSQL at scrape time: the scheduler is another process (or
several replicas), and the database is the one place where every run is recorded, so the
figures are whole whichever worker answers and however many schedulers run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from application.operations import EtlFigures, etl_figures
from application.ports import UnitOfWorkFactory
from application.status import Health, HealthReport

OUTCOMES = ("fetched", "inserted", "updated", "unchanged", "quarantined")
LABELLED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Request count and latency by route template, method and status: falcon middleware."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "kaspero_http_requests_total",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "kaspero_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        route = req.uri_template or "unmatched"
        elapsed = time.perf_counter() - getattr(req.context, "metrics_started", time.perf_counter())
        # a label per made-up method would let any client grow /metrics without bound
        method = req.method if req.method in LABELLED_METHODS else "other"
        self.requests.labels(route, method, str(resp.status_code)).inc()
        self.latency.labels(route, method).observe(elapsed)


class EtlCollector(Collector):
    """ETL figures per source, read from the database at most once per `cache_seconds`: a scrape
    in between gets the figures read last (the tables they aggregate only grow, and a scraper or
    a crowd of them must not cost a query each)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, cache_seconds: float = 15.0) -> None:
        self._uow_factory = uow_factory
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one read at a time: concurrent scrapes wait for it and share it
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._cache_seconds:
                self._cached = (now, list(self._families(etl_figures(self._uow_factory))))
            families = self._cached[1]
        yield from families

    def _families(self, figures: EtlFigures) -> Iterator[Metric]:
        stats = figures.stats
        answers = CounterMetricFamily(
            "kaspero_etl_provider_responses", "Provider answers by HTTP status", labels=["source", "status"]
        )
        for (source, status), count in sorted(figures.responses.items()):
            answers.add_metric([source, status], count)
        checkpoints = figures.checkpoints
        records = CounterMetricFamily(
            "kaspero_etl_records", "Records by source and outcome", labels=["source", "outcome"]
        )
        runs = CounterMetricFamily(
            "kaspero_etl_source_runs", "Source runs by status", labels=["source", "status"]
        )
        requests = CounterMetricFamily(
            "kaspero_etl_http_requests", "Requests made to providers", labels=["source"]
        )
        retries = CounterMetricFamily("kaspero_etl_retries", "Provider requests retried", labels=["source"])
        waits = CounterMetricFamily(
            "kaspero_etl_rate_limit_waits", "Waits for a rate limit", labels=["source"]
        )
        drift = CounterMetricFamily("kaspero_etl_drift_findings", "Schema drift findings", labels=["source"])
        duration = GaugeMetricFamily(
            "kaspero_etl_last_run_duration_seconds",
            "Duration of the source's last finished run",
            labels=["source"],
        )
        success = GaugeMetricFamily(
            "kaspero_etl_last_success_timestamp_seconds", "When the source last succeeded", labels=["source"]
        )
        for item in stats:
            for outcome in OUTCOMES:
                records.add_metric([item.source, outcome], getattr(item.totals, outcome))
            for status, count in sorted(item.runs_by_status.items()):
                runs.add_metric([item.source, status], count)
            requests.add_metric([item.source], item.totals.http_requests)
            retries.add_metric([item.source], item.totals.retries)
            waits.add_metric([item.source], item.totals.rate_limit_waits)
            drift.add_metric([item.source], item.totals.drift_findings)
            if item.last_duration_ms is not None:
                duration.add_metric([item.source], item.last_duration_ms / 1000)
            if item.last_success_at is not None:
                success.add_metric([item.source], item.last_success_at.timestamp())
        age = GaugeMetricFamily(
            "kaspero_etl_checkpoint_age_seconds", "Age of the source's checkpoint", labels=["source"]
        )
        now = datetime.now(UTC)
        for checkpoint in checkpoints:
            age.add_metric([checkpoint.source], (now - checkpoint.updated_at).total_seconds())
        yield from (records, runs, requests, answers, retries, waits, drift, duration, success, age)


class MetricsResource:
    """`/metrics` in the Prometheus text format."""

    def __init__(self, registry: Callable[[], CollectorRegistry]) -> None:
        self._registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self._registry())


class HealthCollector(Collector):
    """`/health`'s verdict per enabled source kind as gauges, for alerts: healthy, stale, and the
    newest run's status; read at most once per `cache_seconds` like the ETL figures."""

    def __init__(self, health: Callable[[], HealthReport], cache_seconds: float = 15.0) -> None:
        self._health = health
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._cache_seconds:
                self._cached = (now, self._families(self._health()))
            families = self._cached[1]
        yield from families

    @staticmethod
    def _families(report: HealthReport) -> list[Metric]:
        healthy = GaugeMetricFamily(
            "kaspero_health_kind_healthy",
            "1 when the kind's newest run succeeded and is fresh",
            labels=["kind"],
        )
        stale = GaugeMetricFamily(
            "kaspero_health_kind_stale", "1 when the kind's newest run is older than its schedule allows",
            labels=["kind"],
        )  # fmt: skip
        status = GaugeMetricFamily(
            "kaspero_health_kind_last_status", "1 for the status of the kind's newest finished run",
            labels=["kind", "status"],
        )  # fmt: skip
        database = GaugeMetricFamily("kaspero_health_database_up", "1 when the database answers")
        database.add_metric([], 1.0 if report.database else 0.0)
        for kind in report.sources:
            healthy.add_metric([kind.kind], 1.0 if kind.status is Health.HEALTHY else 0.0)
            stale.add_metric([kind.kind], 1.0 if kind.stale else 0.0)
            if kind.last_status is not None:
                status.add_metric([kind.kind, kind.last_status.value], 1.0)
        return [healthy, stale, status, database]


def metrics_setup(
    uow_factory: UnitOfWorkFactory,
    multiprocess_dir: Path | None,
    cache_seconds: float = 15.0,
    health: Callable[[], HealthReport] | None = None,
) -> tuple[HttpMetrics, MetricsResource]:
    """The middleware recording HTTP figures and the resource serving everything.

    With a multiprocess directory, every scrape builds a registry over the workers' files; without
    one (a single process, the tests), one registry holds the HTTP metrics.
    """
    etl = EtlCollector(uow_factory, cache_seconds)
    kinds = HealthCollector(health, cache_seconds) if health is not None else None
    if multiprocess_dir is not None:

        def scrape_registry() -> CollectorRegistry:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
            registry.register(etl)
            if kinds is not None:
                registry.register(kinds)
            return registry

        return HttpMetrics(registry=None), MetricsResource(scrape_registry)
    own = CollectorRegistry()
    own.register(etl)
    if kinds is not None:
        own.register(kinds)
    return HttpMetrics(registry=own), MetricsResource(lambda: own)
