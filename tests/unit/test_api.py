"""The HTTP edge over in-memory storage: envelopes, validation, problems, health and readiness."""

from __future__ import annotations

import falcon.testing
import pytest

from adapters.memory.reader import InMemoryHealthProbe, InMemoryRecordReader
from adapters.memory.sources import InMemoryMarketNormalizer, InMemorySourceReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from application.ingest import run_etl
from application.pipeline import SourcePipeline
from domain.assets import Asset
from domain.runs import RunTrigger
from entrypoints.api.app import ApiOptions, create_app
from entrypoints.bootstrap import KINDS
from tests.unit.conftest import clock, coin


def test_data_answers_in_the_envelope_with_exact_money(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/data", params={"symbol": "BTC", "page_size": "1"})
    assert result.status_code == 200
    body = result.json
    assert set(body) == {"data", "pagination", "meta"}
    pagination = body["pagination"]
    assert {k: pagination[k] for k in ("page", "page_size", "total_items", "total_pages")} == {
        "page": 1,
        "page_size": 1,
        "total_items": 2,
        "total_pages": 2,
    }
    assert pagination["total_is_estimate"] is False
    following = client.simulate_get(
        "/data", params={"symbol": "BTC", "page_size": "1", "cursor": pagination["next_cursor"]}
    )
    assert following.json["data"][0]["price_usd"] == "60000.123456789"
    assert following.json["pagination"]["next_cursor"] is not None  # a full page: maybe more
    last = client.simulate_get(
        "/data",
        params={"symbol": "BTC", "page_size": "1", "cursor": following.json["pagination"]["next_cursor"]},
    )
    assert (last.json["data"], last.json["pagination"]["next_cursor"]) == ([], None)
    [item] = body["data"]
    assert item["price_usd"] == "61000"
    assert item["published_at"] == "2024-05-03T00:00:00+00:00"
    assert set(body["meta"]) == {"request_id", "api_latency_ms", "timestamp"}
    assert body["meta"]["request_id"] == result.headers["X-Request-ID"]
    assert float(result.headers["X-Response-Time-Ms"]) >= 0
    page_two = client.simulate_get("/data", params={"symbol": "btc", "page_size": "1", "page": "2"}).json
    assert page_two["data"][0]["price_usd"] == "60000.123456789"


def test_a_sane_incoming_request_id_is_honoured_and_an_unsafe_one_replaced(
    client: falcon.testing.TestClient,
) -> None:
    honoured = client.simulate_get("/data", headers={"X-Request-ID": "trace-42"})
    assert honoured.headers["X-Request-ID"] == "trace-42"
    assert honoured.json["meta"]["request_id"] == "trace-42"
    replaced = client.simulate_get("/data", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["X-Request-ID"] != "bad id\twith spaces"
    assert len(replaced.headers["X-Request-ID"]) == 32


def test_an_item_is_served_by_id_and_an_unknown_id_is_a_404_problem(
    client: falcon.testing.TestClient,
) -> None:
    first = client.simulate_get("/data").json["data"][0]
    item = client.simulate_get(f"/data/{first['id']}")
    assert item.status_code == 200
    assert item.json["data"] == first
    missing = client.simulate_get("/data/999999")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json["detail"] == "no record with id 999999"
    assert missing.json["request_id"] == missing.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("params", "name", "detail"),
    [
        ({"page_size": "101"}, "page_size", "page_size must be between 1 and 100, got 101"),
        ({"page_size": "0"}, "page_size", "page_size must be between 1 and 100, got 0"),
        ({"page": "0"}, "page", "page must be 1 or more, got 0"),
        ({"page": "101"}, "page", "page must be at most 100: deep pages are what `cursor` is for"),
        ({"page": "two"}, "page", "page must be a whole number, got 'two'"),
        ({"sort_by": "password"}, "sort_by", "sort_by must be one of"),
        ({"sort_order": "sideways"}, "sort_order", "sort_order must be one of asc, desc"),
        ({"source_type": "ftp"}, "source_type", "source_type must be one of api, csv, rss"),
        ({"kind": "nft"}, "kind", "kind must be one of market, article"),
        ({"start_date": "yesterday"}, "start_date", "start_date must be an ISO 8601 date"),
        (
            {"start_date": "2024-02-01", "end_date": "2024-01-01"},
            "start_date",
            "start_date must not be after",
        ),
        ({"symbol": ""}, "symbol", "symbol must not be empty"),
        ({"search": "x" * 201}, "search", "search must be at most 200"),
        ({"colour": "red"}, "colour", "unknown query parameter 'colour'"),
    ],
)
def test_bad_parameters_are_400_problems_that_name_the_parameter(
    client: falcon.testing.TestClient, params: dict[str, str], name: str, detail: str
) -> None:
    result = client.simulate_get("/data", params=params)
    assert result.status_code == 400
    assert result.headers["Content-Type"] == "application/problem+json"
    problem = result.json
    assert problem["status"] == 400
    assert problem["detail"].startswith(detail)
    assert problem["invalid_params"][0]["name"] == name


def test_a_repeated_parameter_is_refused(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/data", query_string="category=a&category=b")
    assert result.status_code == 400
    assert result.json["detail"] == "category was given more than once"


def test_dates_with_offsets_survive_an_unencoded_plus(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/data", query_string="start_date=2024-05-02T01:00:00+01:00")
    assert result.status_code == 200
    assert [item["symbol"] for item in result.json["data"]] == ["BTC", "ETH"]


def test_unknown_routes_and_methods_are_problems_too(client: falcon.testing.TestClient) -> None:
    assert client.simulate_get("/nowhere").status_code == 404
    assert client.simulate_get("/nowhere").headers["Content-Type"] == "application/problem+json"
    assert client.simulate_post("/data").status_code == 405


def test_health_reports_the_last_run_and_the_version(client: falcon.testing.TestClient) -> None:
    body = client.simulate_get("/health").json
    assert body == {
        "status": "healthy",
        "database": True,
        "etl_last_run": "2024-05-03T12:00:00+00:00",
        "etl_last_status": "success",
        "version": "9.9.9",
        "reasons": [],
        "sources": {},  # no kind enabled in this app: none judged
        "replicas": [],  # no DATABASE_READ_URL
    }


def test_health_is_503_unhealthy_without_the_database(
    client: falcon.testing.TestClient, probe: InMemoryHealthProbe
) -> None:
    probe.reachable = False
    result = client.simulate_get("/health")
    assert result.status_code == 503
    assert result.json["status"] == "unhealthy"
    assert result.json["database"] is False


def test_ready_needs_every_migration_and_live_needs_nothing(
    client: falcon.testing.TestClient, probe: InMemoryHealthProbe
) -> None:
    assert client.simulate_get("/ready").status_code == 200
    probe.pending = ["0002.next"]
    not_ready = client.simulate_get("/ready")
    assert not_ready.status_code == 503
    assert not_ready.json["pending_migrations"] == ["0002.next"]
    probe.reachable = False
    assert client.simulate_get("/ready").status_code == 503
    assert client.simulate_get("/live").status_code == 200


def test_an_unexpected_failure_is_a_bare_500_that_reveals_nothing(store: InMemoryStore) -> None:
    class BrokenReader(InMemoryRecordReader):
        def find(self, query):  # type: ignore[no-untyped-def]
            raise RuntimeError("password=hunter2 at db.internal")

    app = create_app(BrokenReader(store), InMemoryHealthProbe(), lambda: InMemoryUnitOfWork(store))
    result = falcon.testing.TestClient(app).simulate_get("/data")
    assert result.status_code == 500
    assert result.headers["Content-Type"] == "application/problem+json"
    assert "hunter2" not in result.text
    assert result.json["detail"] == "The server failed to answer this request."


def test_runs_are_listed_newest_first_and_served_by_id(client: falcon.testing.TestClient) -> None:
    listed = client.simulate_get("/runs", params={"limit": "5"})
    assert listed.status_code == 200
    [run] = listed.json["data"]
    assert (run["status"], run["trigger"]) == ("success", "manual")
    [source] = run["sources"]
    assert (source["source"], source["fetched"], source["inserted"], source["http_requests"]) == (
        "api",
        3,
        3,
        0,
    )
    assert client.simulate_get(f"/runs/{run['id']}").json["data"] == run
    assert client.simulate_get("/runs/99").status_code == 404
    assert client.simulate_get("/runs", params={"status": "failed"}).json["data"] == []
    assert client.simulate_get("/runs", params={"status": "sideways"}).status_code == 400
    assert client.simulate_get("/runs", params={"limit": "1000"}).status_code == 400


def test_stats_checkpoints_and_schema_drifts(client: falcon.testing.TestClient, store: InMemoryStore) -> None:
    from domain.drift import DriftFinding, DriftKind

    [stats] = client.simulate_get("/stats").json["data"]
    assert (stats["source"], stats["runs"], stats["records_processed"]) == ("api", 1, 3)
    assert stats["totals"]["inserted"] == 3
    assert stats["last_success_at"] == "2024-05-03T12:00:00+00:00"
    [checkpoint] = client.simulate_get("/checkpoints").json["data"]
    assert (checkpoint["source"], checkpoint["cursor"]) == ("api", {"next_page": 1})
    assert checkpoint["age_seconds"] > 0

    with InMemoryUnitOfWork(store) as uow:
        uow.drifts.record("api", 1, [DriftFinding(DriftKind.ADDED, "exchange", sample_value="x")], clock())
        uow.commit()
    [finding] = client.simulate_get("/schema-drifts", params={"kind": "added", "source": "api"}).json["data"]
    assert (finding["kind"], finding["field"], finding["candidate"], finding["seen_count"]) == (
        "added",
        "exchange",
        None,
        1,
    )
    assert client.simulate_get("/schema-drifts", params={"since": "2030-01-01"}).json["data"] == []
    assert client.simulate_get("/schema-drifts", params={"kind": "vanished"}).status_code == 400


def test_compare_runs_defaults_to_the_last_two_and_accepts_the_original_names(
    client: falcon.testing.TestClient, store: InMemoryStore
) -> None:
    assert client.simulate_get("/compare-runs").status_code == 404  # only one run so far
    reader = InMemorySourceReader("api", [[coin(1, "btc", "1", 1)]])
    run_etl(
        [SourcePipeline(reader, InMemoryMarketNormalizer())],
        lambda: InMemoryUnitOfWork(store),
        clock,
        RunTrigger.MANUAL,
    )
    latest = client.simulate_get("/compare-runs").json["data"]
    assert (latest["run_a"]["id"], latest["run_b"]["id"]) == (1, 2)
    [source] = latest["sources"]
    assert source["delta"]["fetched"] == 1 - 3
    assert (
        client.simulate_get("/compare-runs", params={"run_id_1": "2", "run_id_2": "1"}).json["data"]["run_a"][
            "id"
        ]
        == 2
    )
    assert client.simulate_get("/compare-runs", params={"run_a": "1"}).status_code == 400
    assert client.simulate_get("/compare-runs", params={"run_a": "1", "run_b": "77"}).status_code == 404
    found = client.simulate_get("/runs/2/anomalies").json["data"]
    assert [(item["metric"], item["baseline"], item["observed"]) for item in found][:1] == [
        ("volume", 3.0, 1.0)
    ]
    assert client.simulate_get("/runs/1/anomalies").json["data"] == []  # no earlier run: no baseline


def test_post_runs_needs_a_valid_key_and_queues_a_request(client: falcon.testing.TestClient) -> None:
    missing = client.simulate_post("/runs")
    assert missing.status_code == 401
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert client.simulate_post("/runs", headers={"X-API-Key": "k-12"}).status_code == 401
    queued = client.simulate_post("/runs", headers={"X-API-Key": "k-456"}, json={"sources": ["csv"]})
    assert queued.status_code == 202
    assert queued.headers["Location"] == "/run-requests/1"
    assert queued.json["data"]["status"] == "queued"
    assert queued.json["data"]["sources"] == ["csv"]
    followed = client.simulate_get("/run-requests/1").json["data"]
    assert (followed["status"], followed["run_id"]) == ("queued", None)
    bad = client.simulate_post("/runs", headers={"X-API-Key": "k-123"}, json={"sources": ["ftp"]})
    assert (bad.status_code, bad.json["invalid_params"][0]["name"]) == (400, "sources")
    assert client.simulate_get("/run-requests/99").status_code == 404


def test_with_no_key_configured_writes_are_forbidden_and_say_why(store: InMemoryStore) -> None:
    app = create_app(InMemoryRecordReader(store), InMemoryHealthProbe(), lambda: InMemoryUnitOfWork(store))
    result = falcon.testing.TestClient(app).simulate_post("/runs", headers={"X-API-Key": "anything"})
    assert result.status_code == 403
    assert "none is configured" in result.json["detail"]


def test_reads_can_be_made_to_need_a_key_too_except_the_probes(store: InMemoryStore) -> None:
    options = ApiOptions(source_kinds=tuple(KINDS), api_keys=("secret",), reads_need_key=True)
    app = create_app(
        InMemoryRecordReader(store), InMemoryHealthProbe(), lambda: InMemoryUnitOfWork(store), options
    )
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/data").status_code == 401
    assert client.simulate_get("/data", headers={"X-API-Key": "secret"}).status_code == 200
    assert client.simulate_get("/live").status_code == 200
    assert client.simulate_get("/health").status_code == 200


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"cursor": "not-a-cursor"}, "cursor is not one this API gave out"),
        (
            {"cursor": "eyJzIjoicmFuayIsIm8iOiJhc2MiLCJ2IjoiMSIsImkiOjF9"},
            "cursor belongs to sort_by=rank&sort_order=asc",
        ),
        (
            {"cursor": "eyJzIjoicmFuayIsIm8iOiJhc2MiLCJ2IjoiMSIsImkiOjF9", "page": "2"},
            "give page or cursor, not both",
        ),
    ],
)
def test_a_bad_cursor_is_a_400(
    client: falcon.testing.TestClient, params: dict[str, str], detail: str
) -> None:
    result = client.simulate_get("/data", params=params)
    assert result.status_code == 400
    assert result.json["detail"] == detail


def test_hostile_methods_and_head_get_clean_answers(client: falcon.testing.TestClient) -> None:
    for method in ("TRACE", "FOO", "PROPFIND"):
        answer = client.simulate_request(method, "/data")
        assert answer.status_code == 405, method
        assert answer.headers["Content-Type"] == "application/problem+json"
    head = client.simulate_head("/data")
    assert head.status_code == 200
    assert head.content == b""
    got = client.simulate_get("/data")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Cache-Control"] == "no-store"
    metrics = client.simulate_get("/metrics").text
    assert 'method="FOO"' not in metrics
    assert 'method="other"' in metrics


@pytest.mark.parametrize(
    "value",
    ["with\x00nul", "9" * 2000],
)
def test_crafted_text_cursors_are_refused_before_any_query(
    client: falcon.testing.TestClient, value: str
) -> None:
    import base64
    import json as json_module

    token = base64.urlsafe_b64encode(
        json_module.dumps({"s": "symbol", "o": "desc", "v": value, "i": 1}).encode()
    ).decode()
    answer = client.simulate_get("/data", params={"sort_by": "symbol", "cursor": token})
    assert answer.status_code == 400
    assert answer.json["invalid_params"][0]["name"] == "cursor"


@pytest.mark.parametrize(("value", "record_id"), [("1e999999", 1), ("1", 2**64), ("NaN", 1)])
def test_crafted_number_cursors_are_refused(
    client: falcon.testing.TestClient, value: str, record_id: int
) -> None:
    import base64
    import json as json_module

    token = base64.urlsafe_b64encode(
        json_module.dumps({"s": "price_usd", "o": "desc", "v": value, "i": record_id}).encode()
    ).decode()
    answer = client.simulate_get("/data", params={"sort_by": "price_usd", "cursor": token})
    assert answer.status_code == 400


def test_post_runs_refuses_deep_or_huge_bodies(client: falcon.testing.TestClient) -> None:
    headers = {"X-API-Key": "k-123", "Content-Type": "application/json"}
    deep = client.simulate_post("/runs", body="[" * 5000 + "]" * 5000, headers=headers)
    assert deep.status_code == 400
    assert "nested" in deep.json["detail"]
    huge = client.simulate_post("/runs", body='{"sources": ["' + "x" * 70_000 + '"]}', headers=headers)
    assert huge.status_code == 413
    fine = client.simulate_post("/runs", body='{"sources": ["csv"]}', headers=headers)
    assert fine.status_code == 202


# a read is the ETL figures' unit of work and /health's verdict's (the run it names): 2 a read
@pytest.mark.parametrize(("cache_seconds", "reads"), [(60.0, 2), (0.0, 6)])
def test_metrics_read_the_database_once_per_interval_in_one_unit_of_work(
    store: InMemoryStore, cache_seconds: float, reads: int
) -> None:
    opened: list[int] = []

    def counting() -> InMemoryUnitOfWork:
        opened.append(1)
        return InMemoryUnitOfWork(store)

    app = create_app(
        InMemoryRecordReader(store),
        InMemoryHealthProbe(),
        counting,
        ApiOptions(source_kinds=tuple(KINDS), metrics_cache_seconds=cache_seconds),
    )
    client = falcon.testing.TestClient(app)
    scrapes = [client.simulate_get("/metrics").text for _ in range(3)]
    assert len(opened) == reads  # once per interval, not per scrape, and not three sessions a read
    assert all('kaspero_etl_records_total{outcome="inserted",source="api"} 3.0' in text for text in scrapes)


@pytest.mark.parametrize("path", ["/data", "/quarantine", "/assets"])
def test_every_list_stops_its_offset_pages_at_the_same_depth(
    client: falcon.testing.TestClient, path: str
) -> None:
    assert client.simulate_get(path, params={"page": "100", "page_size": "100"}).status_code == 200
    deep = client.simulate_get(path, params={"page": "101"})
    assert deep.status_code == 400
    assert deep.json["detail"].startswith("page must be at most 100")


def test_symbol_source_and_quote_filters_take_several_values(client: falcon.testing.TestClient) -> None:
    def symbols(query: str) -> list[str]:
        answer = client.simulate_get("/data", query_string=query)
        assert answer.status_code == 200, answer.text
        return sorted(item["symbol"] for item in answer.json["data"])

    assert symbols("symbol=btc") == ["BTC", "BTC"]
    assert symbols("symbol=BTC,eth") == ["BTC", "BTC", "ETH"]
    assert symbols("symbol=BTC&symbol=ETH") == ["BTC", "BTC", "ETH"]
    assert symbols("symbol=ETH&quote_currency=usd,eur") == []  # the fake's records name no quote
    assert symbols("source=api,nowhere") == ["BTC", "BTC", "ETH"]
    assert symbols("source=nowhere") == []
    for bad in ("symbol=BTC,,ETH", "symbol=,BTC", "symbol=" + "&symbol=A" * 51):
        answer = client.simulate_get("/data", query_string=bad)
        assert answer.status_code == 400, bad


def test_moments_at_the_ends_of_the_calendar_are_bounds_not_a_500() -> None:
    from adapters.memory.assets import InMemoryCoverage

    store = InMemoryStore()
    client = falcon.testing.TestClient(
        create_app(
            InMemoryRecordReader(store),
            InMemoryHealthProbe(),
            lambda: InMemoryUnitOfWork(store),
            coverage=InMemoryCoverage(store),
        )
    )
    store.state.assets[1] = Asset(1, "BTC", "Bitcoin", False)
    for path in (
        "/assets/1/history?end=9999-12-31T23:59:59.999999Z",
        "/assets/1/history?start=0001-01-01T00:00:00%2B05:00&interval=5m",
        "/assets/1/coverage?start=0001-01-01&end=9999-12-31T23:00:00-05:00",
        "/history?symbol=BTC&end=9999-12-31T23:59:59Z&format=csv",
    ):
        assert client.simulate_get(path).status_code == 200, path


def test_a_body_of_blanks_is_no_json_document() -> None:
    store = InMemoryStore()
    client = falcon.testing.TestClient(
        create_app(
            InMemoryRecordReader(store),
            InMemoryHealthProbe(),
            lambda: InMemoryUnitOfWork(store),
            ApiOptions(source_kinds=tuple(KINDS), api_keys=("k",)),
        )
    )
    for path in ("/runs", "/quarantine/replay"):
        blank = client.simulate_post(
            path, body="\n", headers={"X-API-Key": "k", "Content-Type": "application/json"}
        )
        assert blank.status_code == 400, path
        none = client.simulate_post(path, headers={"X-API-Key": "k"})
        assert none.status_code == 202, path
