"""gunicorn's configuration for the API: `gunicorn -c python:entrypoints.gunicorn_config ...`.

gunicorn reads this module once, at start, in the master process.
"""

from __future__ import annotations

from typing import Any

from entrypoints.settings import Settings

_settings = Settings.from_environ()

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.web_concurrency
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 10_000  # recycle workers now and then; jitter keeps them from restarting together
max_requests_jitter = 1_000
accesslog = "-"
access_log_format = (
    '{"event": "http_access", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", '
    '"status": %(s)s, "bytes": "%(B)s", "duration_us": %(D)s, "request_id": "%({x-request-id}o)s"}'
)
errorlog = "-"
loglevel = _settings.log_level.lower()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges from the multiprocess metrics (counters stay summed)."""
    if _settings.prometheus_multiproc_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, str(_settings.prometheus_multiproc_dir))  # type: ignore[no-untyped-call]
