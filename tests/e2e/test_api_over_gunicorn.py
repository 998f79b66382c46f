"""The API as deployed: gunicorn workers over HTTP, after the CLI ingested the sample CSV."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.processes import REPO, environment, get, gunicorn, kaspero

SAMPLE = REPO / "tests" / "fixtures" / "messy_market_history.csv"  # the bundled sample plus 4 bad rows


@pytest.fixture(scope="module")
def api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import psycopg

    from tests.conftest import TABLES

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    data = tmp_path_factory.mktemp("csv") / "market_history.csv"
    data.write_bytes(SAMPLE.read_bytes())
    env = environment(DATABASE_URL=database_url, CSV_SOURCE_PATH=str(data))
    result = kaspero("etl", "run", "--once", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "success"
    with gunicorn(env) as base:
        yield base


def test_data_serves_the_sample_rows(api: str) -> None:
    status, headers, body = get(f"{api}/data?page_size=100")
    assert status == 200
    expected_rows = len(SAMPLE.read_text(encoding="utf-8-sig").splitlines()) - 1 - 4  # header, 4 bad rows
    assert body["pagination"]["total_items"] == expected_rows
    assert len(body["data"]) == 100
    assert headers["X-Request-ID"] == body["meta"]["request_id"]


def test_filters_and_items_over_http(api: str) -> None:
    status, _, body = get(f"{api}/data?symbol=eth&sort_by=price_usd&sort_order=asc&page_size=5")
    assert status == 200
    prices = [float(item["price_usd"]) for item in body["data"]]
    assert prices == sorted(prices)
    assert {item["symbol"] for item in body["data"]} == {"ETH"}
    first = body["data"][0]
    status, _, item = get(f"{api}/data/{first['id']}")
    assert (status, item["data"]["source_record_id"]) == (200, first["source_record_id"])
    status, _, body = get(f"{api}/data?search=doge&page_size=1")
    assert body["data"][0]["asset_name"] == "Dogecoin"


def test_health_ready_live_and_problems_over_http(api: str) -> None:
    status, _, health = get(f"{api}/health")
    assert (status, health["status"], health["database"], health["etl_last_status"]) == (
        200,
        "healthy",
        True,
        "success",
    )
    assert get(f"{api}/ready")[0] == 200
    assert get(f"{api}/live")[0] == 200
    status, headers, problem = get(f"{api}/data?page_size=1000", headers={"X-Request-ID": "e2e-1"})
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert problem["request_id"] == "e2e-1"
    assert get(f"{api}/data/123456789")[0] == 404


def test_runs_show_the_per_source_counters_over_http(api: str) -> None:
    status, _, body = get(f"{api}/runs?limit=1")
    assert status == 200
    [run] = body["data"]
    [source] = run["sources"]
    assert (run["status"], run["trigger"], source["source"]) == ("success", "cli", "csv:market_history")
    assert (source["fetched"], source["inserted"], source["quarantined"]) == (544, 540, 4)
    status, _, item = get(f"{api}/runs/{run['id']}")
    assert (status, item["data"]["id"]) == (200, run["id"])


def test_metrics_sum_every_worker_and_show_the_etl_runs(api: str) -> None:
    import urllib.request

    for _ in range(40):  # spread over both workers
        get(f"{api}/data?page_size=1")
    with urllib.request.urlopen(f"{api}/metrics", timeout=10) as response:
        text = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/plain")
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("kaspero_http_requests_total{")
        and 'route="/data"' in line
        and 'status="200"' in line
    )
    assert served >= 40
    assert 'kaspero_etl_records_total{outcome="inserted",source="csv:market_history"} 540.0' in text
    assert 'kaspero_etl_source_runs_total{source="csv:market_history",status="success"} 1.0' in text
    assert "kaspero_etl_last_success_timestamp_seconds{" in text
    assert 'kaspero_etl_checkpoint_age_seconds{source="csv:market_history"}' in text
    assert "kaspero_http_request_duration_seconds_bucket{" in text
    assert "# TYPE kaspero_etl_provider_responses_total counter" in text
