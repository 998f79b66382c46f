"""Per-request context: a request id (the client's, if sane) and the latency, on every response."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import falcon
import structlog

from entrypoints.api import shapes

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContext:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        incoming = req.get_header("X-Request-ID")
        req.context.request_id = (
            incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )
        # every log line written while answering carries the request id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=req.context.request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None) or time.perf_counter()
        request_id = getattr(req.context, "request_id", None) or uuid.uuid4().hex
        req.context.request_id = request_id
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        resp.set_header("X-Request-ID", request_id)
        resp.set_header("X-Response-Time-Ms", str(latency_ms))
        media = resp.media
        if isinstance(media, dict) and "data" in media:
            meta: shapes.Meta = {
                "request_id": request_id,
                "api_latency_ms": latency_ms,
                "timestamp": datetime.now(UTC),
            }
            media["meta"] = meta


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpHygiene:
    """What every answer of the API keeps to, whatever a client sends.

    - A method no HTTP server knows (`FOO`) is a 405, before routing.
    - `HEAD` is answered wherever `GET` is, with the same headers and no body.
    - Every answer says `X-Content-Type-Options: nosniff` and `Cache-Control: no-store`
      (answers are live data; a shared cache must not keep one).
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method not in KNOWN_METHODS:
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD", "POST"])
        if req.method == "HEAD":
            req.context.head = True
            req.method = "GET"  # routed as GET; the body is dropped on the way out

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if getattr(req.context, "head", False):
            req.method = "HEAD"
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Cache-Control", "no-store")


# what needs no database: never held back when the database is slow or frozen
UNGATED_PATHS = frozenset({"/live", "/openapi.json", "/docs", "/docs/init.js"})
UNGATED_PREFIXES = ("/docs/static/", "/ui/static/")


class RequestBudget:
    """Every request that may touch the database gets a total time budget across all its
    statements (`API_REQUEST_BUDGET_MS`, kept from the client side too: a frozen server is cut
    off), and at most `gate` of them run at once in a worker: the worker's last thread stays free
    for `/live` and the pages that need no database, whatever the database does. A request over
    the gate is answered 503 at once (Retry-After: 1) instead of waiting behind the others."""

    def __init__(
        self, budget: Callable[[float], AbstractContextManager[None]], seconds: float, gate: int | None = None
    ) -> None:
        self._budget, self._seconds = budget, seconds
        self._gate = threading.BoundedSemaphore(gate) if gate else None

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in UNGATED_PATHS or req.path.startswith(UNGATED_PREFIXES):
            return
        if self._gate is not None:
            if not self._gate.acquire(blocking=False):
                raise falcon.HTTPServiceUnavailable(
                    title="Service Unavailable",
                    description="Every database slot of this worker is busy; try again shortly.",
                    retry_after=1,
                )
            req.context.gated = True
        budget = self._budget(self._seconds)
        budget.__enter__()
        req.context.budget = budget

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        budget = getattr(req.context, "budget", None)
        if budget is not None:
            req.context.budget = None
            budget.__exit__(None, None, None)
        if getattr(req.context, "gated", False) and self._gate is not None:
            req.context.gated = False
            self._gate.release()
