"""The OpenAPI document describes every route the app has, and answers validate against it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

import attrs
import falcon.inspect
import falcon.testing
import jsonschema_rs
import pytest

from adapters.memory.assets import InMemoryCoverage
from adapters.memory.backfill import InMemoryBackfillQueue
from adapters.memory.reader import InMemoryHealthProbe, InMemoryQuarantineReader, InMemoryRecordReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from domain.assets import Interval
from domain.backfill import JobState
from domain.drift import DriftKind
from domain.records import RecordKind, SourceType
from domain.requests import RequestStatus
from domain.runs import EtlRun, RunStatus, RunTrigger, SourceCounters, SourceRun
from entrypoints.api import render, shapes
from entrypoints.api.app import create_app
from entrypoints.api.openapi import openapi_document
from entrypoints.bootstrap import KINDS

DOCUMENT = openapi_document("test", tuple(KINDS))


def test_every_route_and_method_is_described() -> None:
    app = create_app(
        InMemoryRecordReader(InMemoryStore()),
        InMemoryHealthProbe(),
        lambda: InMemoryUnitOfWork(InMemoryStore()),
        quarantine=InMemoryQuarantineReader(InMemoryStore()),
        coverage=InMemoryCoverage(InMemoryStore()),
        backfills=InMemoryBackfillQueue(InMemoryStore()),
        plan_backfill=lambda *_, **__: 1,
    )
    described = {
        (re.sub(r"\{(\w+)\}", r"{\1}", path), method.lower())
        for path, item in DOCUMENT["paths"].items()
        for method in item
    }
    routed = set()
    for route in falcon.inspect.inspect_routes(app):
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
        if path.startswith(("/docs", "/ui/")) or path == "/":
            continue  # pages for people (the docs page, the dashboard), not part of the API described
        for method in route.methods:
            if not method.internal:
                routed.add((path, method.method.lower()))
    assert routed == described


def validator_for(
    path: str, method: str, status: str, content_type: str
) -> jsonschema_rs.Draft202012Validator:
    """The response schema, validated inside the whole document so its `$ref`s resolve."""
    pointer = "/".join(
        quote(part.replace("~", "~0").replace("/", "~1"), safe="~")
        for part in ("paths", path, method, "responses", status, "content", content_type, "schema")
    )
    return jsonschema_rs.Draft202012Validator({**DOCUMENT, "$ref": f"#/{pointer}"})


@pytest.mark.parametrize(
    ("url", "path", "status", "content_type"),
    [
        ("/data?page_size=2", "/data", "200", "application/json"),
        ("/data/FIRST", "/data/{record_id}", "200", "application/json"),
        ("/data/999", "/data/{record_id}", "404", "application/problem+json"),
        ("/data?page=0", "/data", "400", "application/problem+json"),
        ("/health", "/health", "200", "application/json"),
        ("/ready", "/ready", "200", "application/json"),
        ("/runs", "/runs", "200", "application/json"),
        ("/runs/1", "/runs/{run_id}", "200", "application/json"),
        ("/runs/1/anomalies", "/runs/{run_id}/anomalies", "200", "application/json"),
        ("/stats", "/stats", "200", "application/json"),
        ("/checkpoints", "/checkpoints", "200", "application/json"),
        ("/schema-drifts", "/schema-drifts", "200", "application/json"),
    ],
)
def test_answers_validate_against_the_document(
    client: falcon.testing.TestClient,
    url: str,
    path: str,
    status: str,
    content_type: str,
) -> None:
    if "FIRST" in url:
        url = url.replace("FIRST", str(client.simulate_get("/data").json["data"][0]["id"]))
    result = client.simulate_get(url)
    assert str(result.status_code) == status
    assert result.headers["Content-Type"] == content_type
    validator_for(path, "get", status, content_type).validate(result.json)


def test_the_document_is_served(client: falcon.testing.TestClient) -> None:
    served = client.simulate_get("/openapi.json").json
    assert served["openapi"] == "3.1.0"
    assert set(served["paths"]) == set(DOCUMENT["paths"])


def test_the_validation_would_catch_a_wrong_answer() -> None:
    with pytest.raises(jsonschema_rs.ValidationError):
        validator_for("/health", "get", "200", "application/json").validate({"status": "fine"})
    with pytest.raises(jsonschema_rs.ValidationError):
        validator_for("/data", "get", "200", "application/json").validate({"data": [{"id": "x"}], "meta": {}})


def test_the_docs_page_and_its_files_are_served_by_kaspero_itself() -> None:
    import falcon.testing

    app = create_app(
        InMemoryRecordReader(InMemoryStore()),
        InMemoryHealthProbe(),
        lambda: InMemoryUnitOfWork(InMemoryStore()),
    )
    client = falcon.testing.TestClient(app)
    page = client.simulate_get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "http" not in page.text.replace('"/openapi.json"', "")  # nothing from elsewhere
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        answer = client.simulate_get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 100
    assert "/openapi.json" in client.simulate_get("/docs/init.js").text
    security = DOCUMENT["components"]["securitySchemes"]["ApiKey"]
    assert (security["type"], security["in"], security["name"]) == ("apiKey", "header", "X-API-Key")
    data = DOCUMENT["paths"]["/data"]["get"]["responses"]
    assert {"400", "500", "503"} <= set(data)
    assert "Retry-After" in data["503"]["headers"]


def test_runs_of_every_trigger_and_backfill_jobs_validate_against_the_document(store: InMemoryStore) -> None:
    from datetime import UTC, datetime

    from domain.assets import Interval
    from domain.backfill import BackfillRequest, HistoryTarget, PlannedWindow
    from domain.runs import RunStatus, RunTrigger

    now = datetime(2024, 1, 1, tzinfo=UTC)
    with InMemoryUnitOfWork(store) as uow:
        for trigger in RunTrigger:  # a backfill's and a replay's runs are listed like the others
            uow.runs.finish(uow.runs.start(trigger, now), RunStatus.SUCCESS, None, now)
        uow.commit()
    queue = InMemoryBackfillQueue(store)
    target = HistoryTarget(1, "BTC", "coingecko", "bitcoin")
    job = queue.create(
        BackfillRequest(("BTC",), ("coingecko",), Interval.DAY, now, now.replace(year=2025)),
        [PlannedWindow(target, Interval.DAY, now, now.replace(month=2))],
        ["coingecko ETH: history before 2023-01-01 not asked"],
        now,
    )
    app = create_app(
        InMemoryRecordReader(store), InMemoryHealthProbe(), lambda: InMemoryUnitOfWork(store),
        backfills=queue, plan_backfill=lambda *_, **__: job,
    )  # fmt: skip
    client = falcon.testing.TestClient(app)
    runs = client.simulate_get("/runs?limit=100")
    assert {run["trigger"] for run in runs.json["data"]} >= {trigger.value for trigger in RunTrigger}
    validator_for("/runs", "get", "200", "application/json").validate(runs.json)
    validator_for("/backfills/{job_id}", "get", "200", "application/json").validate(
        client.simulate_get(f"/backfills/{job}").json
    )
    validator_for("/backfills", "get", "200", "application/json").validate(
        client.simulate_get("/backfills").json
    )


def test_each_domain_enum_is_one_schema_with_the_domains_values() -> None:
    """An enum is described once, by the domain's own members, and every answer refers to it."""
    schemas = DOCUMENT["components"]["schemas"]
    text = json.dumps(schemas)
    for kind in (RunStatus, RunTrigger, RecordKind, SourceType, Interval, JobState, RequestStatus, DriftKind):
        values = [member.value for member in kind]
        assert schemas[kind.__name__]["enum"] == values
        assert text.count(json.dumps(values)) == 1, f"{kind.__name__} is typed out again"
        assert f'"#/components/schemas/{kind.__name__}"' in text


def test_the_run_counters_are_the_domains() -> None:
    """The JSON counters name every counter a run keeps, and nothing else: a counter added to the
    domain and not to the shape fails here (and mypy fails `render.counters`)."""
    assert list(shapes.Counters.__annotations__) == [field.name for field in attrs.fields(SourceCounters)]
    assert render.counters(SourceCounters(*range(1, 12))) == {
        field.name: index + 1 for index, field in enumerate(attrs.fields(SourceCounters))
    }


def test_a_rendered_answer_has_exactly_its_declared_keys() -> None:
    """What `render` returns and what the document requires are the same keys (all of them
    required: a shape's key is always sent, null when it has no value)."""
    schemas = DOCUMENT["components"]["schemas"]
    run = EtlRun(
        id=3,
        trigger=RunTrigger.CLI,
        status=RunStatus.SUCCESS,
        started_at=datetime(2024, 1, 1, tzinfo=UTC),
        finished_at=datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
        sources=(SourceRun("csv:x", SourceCounters(fetched=2), RunStatus.SUCCESS),),
    )
    answer = render.run(run)
    assert set(answer) == set(schemas["Run"]["properties"]) == set(schemas["Run"]["required"])
    assert set(answer["sources"][0]) == set(schemas["SourceRun"]["properties"])
    jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/Run", "components": {"schemas": schemas}}
    ).validate(json.loads(render.dumps(answer)))
