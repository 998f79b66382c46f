"""Errors to HTTP: one place maps them, one serializer writes RFC 9457 problem bodies."""

from __future__ import annotations

from typing import Any

import falcon
import structlog

from application.errors import InvalidQuery, NotFound, StoreConflict, StoreTooSlow, StoreUnavailable
from entrypoints.api import shapes

PROBLEM_JSON = "application/problem+json"

logger = structlog.get_logger("kaspero.api")


class InvalidParameter(falcon.HTTPBadRequest):
    """A query parameter a client sent is unknown or has a value that cannot be used."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(title="Invalid query parameter", description=detail)
        self.parameter = name


def serialize_problem(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    problem: shapes.Problem = {
        "type": "about:blank",
        "title": error.title,
        "status": error.status_code,
        "detail": error.description or error.title,
        "instance": req.path,
        "request_id": getattr(req.context, "request_id", None),
    }
    if isinstance(error, InvalidParameter):
        problem["invalid_params"] = [{"name": error.parameter, "reason": problem["detail"]}]
    resp.media = problem
    resp.content_type = PROBLEM_JSON


def handle_not_found(
    req: falcon.Request, resp: falcon.Response, ex: NotFound, params: dict[str, Any]
) -> None:
    raise falcon.HTTPNotFound(title="Not found", description=str(ex))


RETRY_AFTER_SECONDS = 5


def handle_invalid_query(
    req: falcon.Request, resp: falcon.Response, ex: InvalidQuery, params: dict[str, Any]
) -> None:
    raise falcon.HTTPBadRequest(title="Invalid query", description=str(ex))


def handle_store_unavailable(
    req: falcon.Request, resp: falcon.Response, ex: StoreUnavailable, params: dict[str, Any]
) -> None:
    """The database is away or too slow: 503 with Retry-After, said plainly, logged once."""
    logger.warning("database_unavailable", path=req.path, error=str(ex))
    detail = (
        "The query took too long and was cancelled; narrow it (filters, a shorter range, `cursor` "
        "instead of a deep page)."
        if isinstance(ex, StoreTooSlow)
        else "The database is not reachable right now; try again shortly."
    )
    raise falcon.HTTPServiceUnavailable(
        title="Service Unavailable", description=detail, retry_after=RETRY_AFTER_SECONDS
    )


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    """Log the failure with the request id; tell the client nothing about it."""
    logger.exception("unhandled_error", path=req.path, request_id=getattr(req.context, "request_id", None))
    raise falcon.HTTPInternalServerError(
        title="Internal Server Error", description="The server failed to answer this request."
    )


def handle_store_conflict(
    req: falcon.Request, resp: falcon.Response, ex: StoreConflict, params: dict[str, Any]
) -> None:
    """The database aborted the request's transaction for another's sake: try again, shortly."""
    logger.warning("database_conflict", path=req.path, error=str(ex))
    raise falcon.HTTPServiceUnavailable(
        title="Service Unavailable",
        description="The request conflicted with other work; try again.",
        retry_after=1,
    )


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    app.set_error_serializer(serialize_problem)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(NotFound, handle_not_found)
    app.add_error_handler(InvalidQuery, handle_invalid_query)
    app.add_error_handler(StoreUnavailable, handle_store_unavailable)
    app.add_error_handler(StoreConflict, handle_store_conflict)
