"""gunicorn's configuration for the API: `gunicorn -c python:entrypoints.gunicorn_config ...`.

gunicorn reads this module once, at start, in the master process.
"""

from __future__ import annotations

import json
from typing import Any

import gunicorn.http.wsgi
import gunicorn.util

from entrypoints.api import shapes
from entrypoints.settings import Settings

_settings = Settings.from_environ()


def _problem_page(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own refusals (400, 414 a request line too long, 431 headers too large) as
    RFC 9457 problems like every other answer, instead of its HTML page."""
    problem: shapes.Problem = {
        "type": "about:blank",
        "title": reason,
        "status": status_int,
        "detail": mesg or reason,
    }
    body = json.dumps(problem).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


# set here, in the master, before the workers fork: both are looked up when used
gunicorn.util.write_error = _problem_page
gunicorn.http.wsgi.SERVER = "kaspero"  # the `Server` header names no server software or version

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.web_concurrency
# threads, so a slow client or a request waiting for the database holds one thread, not a whole
# worker: `/live` and other requests are answered meanwhile (see README, "Faults")
worker_class = "gthread"
threads = _settings.api_threads
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 10_000  # recycle workers now and then; jitter keeps them from restarting together
max_requests_jitter = 1_000
accesslog = "-"
# gunicorn's lines in Kaspero's format (JSON, or the console format on a terminal)
logger_class = "entrypoints.gunicorn_logging.KasperoGunicornLogger"
errorlog = "-"
loglevel = _settings.log_level.lower()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges from the multiprocess metrics (counters stay summed)."""
    if _settings.prometheus_multiproc_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, str(_settings.prometheus_multiproc_dir))  # type: ignore[no-untyped-call]
