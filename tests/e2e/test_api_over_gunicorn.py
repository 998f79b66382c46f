"""The API as deployed: gunicorn workers over HTTP, after the CLI ingested the sample CSV."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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


def _raw(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.headers, ex.read()


def _every_record(api: str) -> list[dict[str, Any]]:
    """The JSON pages walked by cursor: what the files must hold, in the same order."""
    records, url = [], f"{api}/data?page_size=100"
    while url:
        status, _, body = get(url)
        assert status == 200
        records += body["data"]
        cursor = body["pagination"].get("next_cursor")
        url = f"{api}/data?page_size=100&cursor={cursor}" if cursor else ""
    return records


def test_data_exports_as_csv_hold_the_file_and_the_json_value_by_value(
    api: str, database_url: str, tmp_path: Path
) -> None:
    status, headers, body = _raw(f"{api}/data?format=csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Transfer-Encoding"] == "chunked"  # streamed, not held
    assert "attachment" in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    records = _every_record(api)
    assert len(rows) == len(records) == 540
    for row, record in zip(rows, records, strict=True):
        assert row["id"] == str(record["id"])
        for column in ("symbol", "source", "quote_currency", "price", "price_usd", "open_usd", "high_usd",
                       "low_usd", "volume_24h_usd", "market_cap_usd"):  # fmt: skip
            assert row[column] == (record[column] or ""), column
        for column in ("observed_at", "published_at", "created_at"):
            assert record[column] is not None
            assert datetime.fromisoformat(row[column]) == datetime.fromisoformat(record[column])
        assert (row["raw_id"], row["checksum"]) == (
            str(record["lineage"]["raw_id"]),
            record["lineage"]["checksum"],
        )
        assert json.loads(row["extra"]) == record["extra"]

    # and the file the rows came from: its ISO-dated lines (the others write dates three other
    # ways), prices as written there with their "$" and thousands separators taken off
    def number(text: str) -> Decimal:
        return Decimal(text.replace("$", "").replace(",", ""))

    def clean(line: dict[str, str]) -> bool:  # the 4 bad rows are quarantined, not exported
        try:
            return line["date"][:2] == "20" and number(line["close"]) > 0
        except ArithmeticError:
            return False

    lines = csv.DictReader(io.StringIO(SAMPLE.read_text(encoding="utf-8-sig")))
    written = {(line["date"], line["symbol"]): line for line in lines if clean(line)}

    compared = 0
    for row in rows:
        line = written.get((row["observed_at"][:10], row["symbol"]))
        if line is not None:
            compared += 1
            assert Decimal(row["price"]) == number(line["close"])
            assert Decimal(row["open_usd"]) == number(line["open"])
            if line["volume"]:
                assert Decimal(row["volume_24h_usd"]) == number(line["volume"])
            else:  # none in the file, none exported
                assert row["volume_24h_usd"] == ""
    assert compared > 250
    # the command line writes the same file
    output = tmp_path / "export.csv"
    done = kaspero(
        "export", "--format", "csv", "--output", str(output), env=environment(DATABASE_URL=database_url)
    )
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == body
    assert [path.name for path in tmp_path.iterdir()] == ["export.csv"]  # nothing partial left beside it


def test_data_exports_as_ndjson_by_accept_and_refuses_pages(api: str) -> None:
    status, headers, body = _raw(f"{api}/data", headers={"Accept": "application/x-ndjson"})
    assert (status, headers["Content-Type"]) == (200, "application/x-ndjson")
    lines = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    assert lines == _every_record(api)
    status, _, body = _raw(f"{api}/data?symbol=BTC&format=ndjson")
    assert {json.loads(line)["symbol"] for line in body.splitlines()} == {"BTC"}
    status, headers, body = _raw(f"{api}/data?format=csv&page=2")
    assert (status, headers["Content-Type"]) == (400, "application/problem+json")
    assert "streams every matching record" in json.loads(body)["detail"]
    status, headers, _ = _raw(
        f"{api}/data?page_size=3", headers={"Accept": "text/html,application/json;q=0.9,*/*"}
    )
    assert headers["Content-Type"].startswith("application/json")  # a browser gets its page


def test_data_exports_as_parquet_read_back_by_pyarrow_equal_the_json(
    api: str, database_url: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    status, headers, body = _raw(f"{api}/data?format=parquet&symbol=BTC,ETH")
    assert (status, headers["Content-Type"]) == (200, "application/vnd.apache.parquet")
    rows = pq.read_table(io.BytesIO(body)).to_pylist()
    records = [record for record in _every_record(api) if record["symbol"] in ("BTC", "ETH")]
    assert len(rows) == len(records) > 100
    for row, record in zip(rows, records, strict=True):
        assert row["id"] == record["id"]
        for column in (
            "price",
            "price_usd",
            "open_usd",
            "high_usd",
            "low_usd",
            "volume_24h_usd",
            "market_cap_usd",
        ):
            assert (None if row[column] is None else Decimal(row[column])) == (
                None if record[column] is None else Decimal(record[column])
            ), column
        assert row["observed_at"] == datetime.fromisoformat(record["observed_at"])
        assert (row["symbol"], row["raw_id"]) == (record["symbol"], record["lineage"]["raw_id"])
    # the command line, with the filter's values comma-separated as the API takes them
    output = tmp_path / "btc-eth.parquet"
    done = kaspero("export", "--format", "parquet", "--symbol", "btc,ETH", "--output", str(output),
                   env=environment(DATABASE_URL=database_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert pq.read_table(output).to_pylist() == rows


def test_history_of_several_assets_pages_by_next_start_and_streams_the_same_as_files(
    api: str, database_url: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    # a file's daily bar is its day's candle: what /data holds (checked against the file by
    # the tests above) is what the history must answer, value by value
    records = [record for record in _every_record(api) if record["symbol"] in ("BTC", "ETH")]
    expected = {
        (datetime.fromisoformat(r["observed_at"]), r["symbol"], r["source"]): tuple(
            Decimal(r[column]) for column in ("open_usd", "high_usd", "low_usd", "price_usd")
        )
        for r in records
    }
    pages: list[list[dict[str, Any]]] = []
    query = f"{api}/history?symbol=btc,ETH&interval=1d&limit=7"
    url = query
    while url:
        status, _, body = get(url)
        assert status == 200, body
        pages.append(body["data"])
        url = f"{query}&start={urllib.parse.quote(body['next_start'])}" if body["next_start"] else ""
    assert len(pages) > 20
    assert all(1 <= len(page) <= 7 for page in pages)
    buckets = [{candle["bucket"] for candle in page} for page in pages]
    assert sum(len(page) for page in buckets) == len(set().union(*buckets))  # no bucket split
    candles = [candle for page in pages for candle in page]
    found = {
        (datetime.fromisoformat(c["bucket"]), c["symbol"], c["source"]): tuple(
            Decimal(c[column]) for column in ("open", "high", "low", "close")
        )
        for c in candles
    }
    assert len(found) == len(candles)
    assert found == expected
    # the whole range as files, in the pages' order, values as the JSON has them
    status, headers, body = _raw(f"{api}/history?symbol=ETH,btc&interval=1d&format=csv")
    assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    output = tmp_path / "history.csv"
    done = kaspero("export", "--of", "history", "--symbol", "eth", "--symbol", "BTC", "--output", str(output),
                   env=environment(DATABASE_URL=database_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == body  # the command line writes what the API streams
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert [(r["bucket"], r["symbol"], r["close"]) for r in rows] == [
        (datetime.fromisoformat(c["bucket"]).isoformat(), c["symbol"], c["close"]) for c in candles
    ]
    status, _, body = _raw(
        f"{api}/history?symbol=BTC,ETH", headers={"Accept": "application/vnd.apache.parquet"}
    )
    table = pq.read_table(io.BytesIO(body)).to_pylist()
    assert [(row["bucket"], row["asset_id"], row["high"]) for row in table] == [
        (datetime.fromisoformat(c["bucket"]), c["asset_id"], Decimal(c["high"])) for c in candles
    ]
    # one asset's history pages the same way
    btc = candles[0]["asset_id"] if candles[0]["symbol"] == "BTC" else candles[1]["asset_id"]
    status, _, body = get(f"{api}/assets/{btc}/history?limit=5")
    assert (status, len(body["data"]), {c["symbol"] for c in body["data"]}) == (200, 5, {"BTC"})
    assert body["next_start"] == candles[10]["bucket"]  # the sixth day: two candles a day above
    # what a history cannot answer is a 400 or a 404 that says why
    assert get(f"{api}/history?interval=1d")[0] == 400
    assert get(f"{api}/history?symbol=BTC&format=csv&limit=5")[0] == 400
    status, _, problem = get(f"{api}/history?symbol=BTC,NOSUCHCOIN")
    assert (status, problem["detail"]) == (404, "no asset with symbol NOSUCHCOIN")
    assert get(f"{api}/history?asset_id=0")[0] == 400


def test_quarantine_exports_hold_what_its_pages_hold(api: str, database_url: str, tmp_path: Path) -> None:
    status, _, page = get(f"{api}/quarantine?page_size=100")
    assert status == 200
    entries = page["data"]
    assert len(entries) == 4  # the sample's four bad rows
    status, headers, body = _raw(f"{api}/quarantine?format=csv")
    assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert [int(row["id"]) for row in rows] == [entry["id"] for entry in entries]
    for row, entry in zip(rows, entries, strict=True):
        assert (row["source"], row["reason"]) == (entry["source"], entry["reason"])
        assert json.loads(row["payload"]) == entry["payload"]  # the line as received, whole
    status, _, body = _raw(f"{api}/quarantine", headers={"Accept": "application/x-ndjson"})
    assert [json.loads(line) for line in body.splitlines()] == entries
    output = tmp_path / "quarantine.ndjson"
    done = kaspero("export", "--of", "quarantine", "--format", "ndjson", "--output", str(output),
                   env=environment(DATABASE_URL=database_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == body
