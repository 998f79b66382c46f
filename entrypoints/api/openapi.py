"""The OpenAPI 3.1 description of the API, served at `/openapi.json`; tests hold the API to it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import falcon

from domain.assets import Interval
from domain.drift import DriftKind
from domain.runs import RunStatus
from entrypoints.api import declared, shapes

MAX_ID = declared.MAX_ID


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path_id(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _with_files(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer that is also a file: CSV (a header line, then a record a line), NDJSON (one
    record object a line) or Parquet."""
    content = {
        **answer["content"],
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "application/vnd.apache.parquet": {
            "schema": {"type": "string", "contentMediaType": "application/vnd.apache.parquet"}
        },
    }
    return {**answer, "content": content}


def _enum(kind: type[enum.StrEnum]) -> dict[str, Any]:
    """A JSON schema enum of a domain enum's values: one list, the domain's."""
    return {"enum": [member.value for member in kind]}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _envelope(data: dict[str, Any], paginated: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {"data": data, "meta": _ref("Meta")}
    if paginated:
        properties["pagination"] = _ref("Pagination")
    return {"type": "object", "required": list(properties), "properties": properties}


def _list_of(name: str) -> dict[str, Any]:
    return _envelope({"type": "array", "items": _ref(name)})


TEXT = declared.TEXT_SCHEMA
MOMENT = {"type": "string", "format": "date-time"}
MONEY = _nullable({"type": "string", "pattern": r"^-?\d+(\.\d+)?(E[+-]?\d+)?$"})
BAD = _problem("a parameter is unknown, repeated, empty or out of range")
NOT_FOUND = _problem("no such thing")
# answered by gunicorn itself (`limit_request_line`), before the application sees the request,
# as a problem too (entrypoints/gunicorn_config.py)
TOO_LONG = _problem("request line too long")
UNAVAILABLE = {
    **_problem("the database is not reachable right now, or the query ran past the statement timeout"),
    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
}
FAILED = _problem("the server failed to answer; nothing about the cause is revealed (it is logged)")
NOT_ALLOWED = _problem("a method this resource does not answer")
SERVER_ANSWERS = {"405": NOT_ALLOWED, "500": FAILED, "503": UNAVAILABLE}
DATA_PARAMETERS = [_query(param.name, param.schema(), param.description) for param in declared.DATA]

HISTORY_PARAMETERS = [_query(param.name, param.schema(), param.description) for param in declared.HISTORY]
HISTORY_RANGE_PARAMETERS = [
    _query(param.name, param.schema(), param.description) for param in declared.HISTORY_RANGE
]
HISTORY_ANSWER = _with_files(
    _json(
        {
            "type": "object",
            "required": ["data", "next_start", "meta"],
            "properties": {
                "data": {"type": "array", "items": _ref("Candle")},
                "next_start": {
                    **_nullable(MOMENT),
                    "description": "the next page's `start` (the same query otherwise); null: the range is done",
                },
                "meta": _ref("Meta"),
            },
        },
        "candles oldest first, by (bucket, asset, series), whole buckets a page; with format=csv, "
        "ndjson or parquet, every candle of the range streamed",
    )
)

QUARANTINE_PARAMETERS = [
    _query(param.name, param.schema(), param.description) for param in declared.QUARANTINE
]


def _keyed_post(summary: str, properties: dict[str, Any], queued: str) -> dict[str, Any]:
    """A POST that needs X-API-Key, takes an optional JSON object of `properties` and queues a
    run request for the schedulers (202 with it)."""
    body = {"type": "object", "additionalProperties": False, "properties": properties}
    return {
        "summary": summary,
        "security": [{"ApiKey": []}],
        "requestBody": {"required": False, "content": {"application/json": {"schema": body}}},
        "responses": {
            "202": _json(_envelope(_ref("RunRequest")), queued),
            "400": BAD,
            "401": _problem("no valid X-API-Key"),
            "403": _problem("no API key is configured on the server"),
            "413": _problem("the body is larger than 64 KiB"),
            "414": TOO_LONG,
            **SERVER_ANSWERS,
        },
    }


def _get(
    summary: str,
    ok: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses = {"200": ok, "400": BAD, "414": TOO_LONG, **SERVER_ANSWERS, **(extra or {})}
    return {"get": {"summary": summary, "parameters": parameters or [], "responses": responses}}


def openapi_document(version: str, source_kinds: Sequence[str]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kaspero", "version": version, "description": "Crypto market data, unified."},
        "paths": {
            "/data": _get(
                "Unified records, filtered, sorted and paged; or every match as a CSV, NDJSON or Parquet file",
                _with_files(
                    _json(
                        _envelope({"type": "array", "items": _ref("Record")}, paginated=True),
                        "a page of records; with format=csv, ndjson or parquet, every matching record streamed",
                    )
                ),
                DATA_PARAMETERS,
            ),
            "/quarantine": _get(
                "Quarantined records, newest first, with the reason and the payload as received; or all of them as a file",
                _with_files(
                    _json(
                        _envelope({"type": "array", "items": _ref("Quarantined")}, paginated=True),
                        "a page of quarantined records; with format=csv, ndjson or parquet, every match streamed",
                    )
                ),
                QUARANTINE_PARAMETERS,
            ),
            "/data/{record_id}": _get(
                "One record",
                _json(_envelope(_ref("Record")), "the record"),
                [_path_id("record_id")],
                extra={"404": NOT_FOUND},
            ),
            "/health": _get(
                "Health",
                _json(_ref("Health"), "healthy or degraded"),
                extra={"503": _json(_ref("Health"), "database unreachable")},
            ),
            "/ready": _get(
                "Readiness", _json(_ref("Ready"), "ready"), extra={"503": _json(_ref("Ready"), "not ready")}
            ),
            "/live": _get("Liveness", _json(_ref("Live"), "alive")),
            "/runs": {
                **_get(
                    "ETL runs, newest first",
                    _json(_list_of("Run"), "runs"),
                    [
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "how many"),
                        _query(
                            "status",
                            _enum(RunStatus),
                            "only runs with this status",
                        ),
                        _query("source", TEXT, "only runs of this source"),
                    ],
                ),
                "post": _keyed_post(
                    "Queue a run for the schedulers (needs X-API-Key)",
                    {
                        "sources": {
                            "type": "array",
                            "items": {"enum": list(source_kinds)},
                            "description": "the source kinds to run; none: every kind",
                        }
                    },
                    "queued",
                ),
            },
            "/quarantine/replay": {
                "post": _keyed_post(
                    "Queue a replay of the quarantine for the schedulers (needs X-API-Key): quarantined "
                    "records read again through the current rules and options; those that pass are "
                    "stored with their lineage and leave the quarantine (`kaspero quarantine replay`)",
                    {
                        "source": {
                            **TEXT,
                            "pattern": f"^({'|'.join(source_kinds)})(:[^\u0000]*)?$",
                            "description": "one source, e.g. csv:prices or coingecko; none: every enabled source",
                        },
                        "reason": {
                            **TEXT,
                            "description": "only entries whose reason holds this text (any case)",
                        },
                    },
                    "queued; follow it at its Location",
                ),
            },
            "/runs/{run_id}": _get(
                "One run",
                _json(_envelope(_ref("Run")), "the run"),
                [_path_id("run_id")],
                extra={"404": NOT_FOUND},
            ),
            "/runs/{run_id}/anomalies": _get(
                "A run's anomalies against each source's earlier runs",
                _json(_list_of("Anomaly"), "anomalies"),
                [
                    _path_id("run_id"),
                    _query(
                        "baseline_runs",
                        {"type": "integer", "minimum": 1, "maximum": 100},
                        "earlier runs to compare with",
                    ),
                ],
                extra={"404": NOT_FOUND},
            ),
            "/backfills": {
                **_get(
                    "The newest backfill jobs",
                    _json(_list_of("BackfillJob"), "jobs, newest first"),
                    [
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 200},
                            "how many (default 20)",
                        )
                    ],
                ),
                "post": {
                    "summary": "Plan a history backfill (needs X-API-Key): windows the schedulers take "
                    "(`kaspero backfill`); 202 with the job to follow at its Location. 400 when `since` is "
                    "not before `until`, a source has no history, or the job would take over 200,000 requests",
                    "security": [{"ApiKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["symbols"],
                                    "properties": {
                                        "symbols": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 500,
                                            "items": {"type": "string", "minLength": 1, "maxLength": 60},
                                        },
                                        "sources": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 20,
                                            "items": {"type": "string", "minLength": 1, "maxLength": 60},
                                            "description": "providers with history; none: all of them",
                                        },
                                        "interval": _enum(Interval),
                                        "since": {
                                            "type": "string",
                                            "format": "date-time",
                                            "description": "default: a year before now",
                                        },
                                        "until": {
                                            "type": "string",
                                            "format": "date-time",
                                            "description": "exclusive; default: now",
                                        },
                                        "gaps": {"type": "boolean", "description": "only what is missing"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(_envelope(_ref("BackfillJob")), "planned"),
                        "400": BAD,
                        "401": _problem("no valid X-API-Key"),
                        "403": _problem("no API key is configured on the server"),
                        "413": _problem("the body is larger than 64 KiB"),
                        "414": TOO_LONG,
                        **SERVER_ANSWERS,
                    },
                },
            },
            "/backfills/{job_id}": _get(
                "A backfill job's progress, counters and errors",
                _json(_envelope(_ref("BackfillJob")), "the job"),
                [_path_id("job_id")],
                extra={"404": NOT_FOUND},
            ),
            "/run-requests/{request_id}": _get(
                "A queued run's state",
                _json(_envelope(_ref("RunRequest")), "the request"),
                [_path_id("request_id")],
                extra={"404": NOT_FOUND},
            ),
            "/compare-runs": _get(
                "Per-source deltas and anomalies of run B against run A (both or neither: one alone is a "
                "400; neither: the newest run against the last run of its sources, 404 when there is none)",
                _json(_envelope(_ref("Comparison")), "the comparison"),
                [
                    _query(name, {"type": "integer", "minimum": 1, "maximum": MAX_ID}, description)
                    for name, description in (
                        ("run_a", "the baseline run (with run_b)"),
                        ("run_b", "the run compared (with run_a)"),
                        ("run_id_1", "the original name of run_a"),
                        ("run_id_2", "the original name of run_b"),
                    )
                ]
                + [
                    _query(
                        "price_move_pct",
                        {"type": "integer", "minimum": 0, "maximum": 1000},
                        "a large price move, %",
                    )
                ],
                extra={"404": NOT_FOUND},
            ),
            "/assets": _get(
                "Canonical assets, one per coin across every source",
                _json(
                    _envelope({"type": "array", "items": _ref("Asset")}, paginated=True), "a page of assets"
                ),
                [
                    _query("symbol", TEXT, "assets with this symbol (several may share one)"),
                    _query(
                        "search",
                        TEXT,
                        "a case-insensitive part of the name, taken literally (`%` and `_` are themselves)",
                    ),
                    _query(
                        "page", declared.PAGE.schema(), "page number, from 1 (narrow with `search` past it)"
                    ),
                    _query("page_size", {"type": "integer", "minimum": 1, "maximum": 100}, "items per page"),
                ],
            ),
            "/assets/{asset_id}": _get(
                "An asset: its aliases per source, each source's latest price, the consensus and spread",
                _json(_envelope(_ref("AssetView")), "the asset"),
                [_path_id("asset_id")],
                extra={"404": NOT_FOUND},
            ),
            "/assets/{asset_id}/history": _get(
                "OHLC of the asset's observations per time bucket, per source or all together",
                HISTORY_ANSWER,
                [_path_id("asset_id"), *HISTORY_RANGE_PARAMETERS],
                extra={"404": NOT_FOUND},
            ),
            "/assets/{asset_id}/coverage": _get(
                "Which buckets of the asset's history hold data, per source: covered ranges and gaps",
                _json(_envelope(_ref("Coverage")), "coverage per source"),
                [
                    _path_id("asset_id"),
                    _query(
                        "interval",
                        _enum(Interval),
                        "bucket width (default 1d)",
                    ),
                    _query("source", TEXT, "one source (all of the range a gap when it holds nothing)"),
                    _query(
                        "start",
                        MOMENT,
                        "from this moment's bucket: missing buckets before the data count as a gap",
                    ),
                    _query("end", MOMENT, "to this moment's bucket (not before `start`: 400)"),
                ],
                extra={"404": NOT_FOUND},
            ),
            "/history": _get(
                "OHLC of several assets at once over a range, a page at a time or as a file. Name the "
                "assets by `symbol` or `asset_id` (or both): none named, or more than 50 assets, is a 400",
                HISTORY_ANSWER,
                HISTORY_PARAMETERS,
                extra={"404": _problem("a symbol or asset id no asset has")},
            ),
            "/stats": _get("Per-source statistics over every run", _json(_list_of("Stats"), "statistics")),
            "/checkpoints": _get("Each source's checkpoint", _json(_list_of("Checkpoint"), "checkpoints")),
            "/schema-drifts": _get(
                "Schema drift findings, newest first",
                _json(_list_of("Drift"), "findings"),
                [
                    _query("source", TEXT, "only this source"),
                    _query("kind", _enum(DriftKind), "only this kind"),
                    _query("since", {"type": "string", "format": "date-time"}, "last seen on or after"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "how many"),
                ],
            ),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
        "components": {
            # every answer's shape, generated from the declaration `render` returns (shapes.py)
            "schemas": shapes.schemas(),
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "one of API_KEYS; needed by POST /runs, and by every read when "
                    "API_READ_REQUIRES_KEY=true (never by /health, /ready, /live, /metrics, /openapi.json, /docs)",
                }
            },
        },
    }


class OpenApiResource:
    def __init__(self, version: str, source_kinds: Sequence[str]) -> None:
        self._document = openapi_document(version, source_kinds)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document
