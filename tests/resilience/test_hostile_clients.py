"""Hostile requests against the deployed API (gunicorn over PostgreSQL): crafted cursors,
made-up methods, oversized request lines, deep bodies; every answer a clean 4xx."""

from __future__ import annotations

import base64
import json
import socket
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.processes import REPO, environment, get, gunicorn, kaspero


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[str]:
    env = environment(
        DATABASE_URL=database_url, CSV_SOURCE_PATH=str(REPO / "data" / "market_history.csv"), API_KEYS="k"
    )
    kaspero("etl", "run", "--once", env=env)
    with gunicorn(env) as base:
        yield base


def cursor(sort_by: str, value: str, record_id: int = 1) -> str:
    raw = json.dumps({"s": sort_by, "o": "desc", "v": value, "i": record_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort_by", "value", "record_id"),
    [
        ("symbol", "BTC\x00", 1),
        ("title", "x\x00y", 1),
        ("price_usd", "1e999999", 1),
        ("price_usd", "-1e-999999", 1),
        ("observed_at", "9999-99-99", 1),
        ("rank", "99999999999999999999999", 1),
        ("id", "1", 2**70),
    ],
)
def test_crafted_cursors_are_400_never_500(api: str, sort_by: str, value: str, record_id: int) -> None:
    token = cursor(sort_by, value, record_id)
    status, _, problem = get(f"{api}/data?sort_by={sort_by}&cursor={token}")
    assert status == 400, problem
    assert problem["invalid_params"][0]["name"] == "cursor"


def raw_request(base: str, request: bytes) -> bytes:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_made_up_methods_are_405_and_share_one_metrics_label(api: str) -> None:
    for index in range(30):
        answer = raw_request(
            api, f"X{index}Y /data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 405"), answer[:80]
    with urllib.request.urlopen(f"{api}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'method="X1Y"' not in metrics
    assert 'method="other"' in metrics


def test_head_works_where_get_does_and_answers_carry_nosniff(api: str) -> None:
    answer = raw_request(api, b"HEAD /data?page_size=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""
    assert b"x-content-type-options: nosniff" in head.lower()
    assert b"Server: kaspero" in head


def test_gunicorns_own_refusals_are_problems_without_a_banner(api: str) -> None:
    answer = raw_request(api, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414"), head[:80]
    assert b"application/problem+json" in head
    assert b"gunicorn" not in answer.lower()
    assert json.loads(body)["status"] == 414


def test_post_runs_refuses_deep_and_huge_bodies(api: str) -> None:
    def post(body: bytes) -> int:
        request = urllib.request.Request(
            f"{api}/runs",
            data=body,
            method="POST",
            headers={"X-API-Key": "k", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as ex:
            return ex.code

    assert post(b"[" * 100_000 + b"]" * 100_000) == 413
    assert post(b"[" * 30 + b"]" * 30) == 400
    assert post(b'{"sources": [' + b'"csv",' * 20_000 + b'"csv"]}') == 413


def _chunked_post(api: str, body: bytes, chunk: int = 8192) -> tuple[int, dict]:
    """POST /runs with `Transfer-Encoding: chunked` (no Content-Length), the chunks written by hand."""
    address = urlsplit(api)
    with socket.create_connection((address.hostname, address.port), timeout=20) as connection:
        connection.sendall(
            b"POST /runs HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        try:
            for start in range(0, len(body), chunk):
                part = body[start : start + chunk]
                connection.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before the whole body: what a cap should do
        answer = b""
        while chunk_read := connection.recv(65536):
            answer += chunk_read
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload.strip().startswith(b"{") else {}


def test_a_chunked_body_is_read_and_checked_like_any_other(api: str) -> None:
    status, problem = _chunked_post(api, b'{"sources": ["bogus"]}')
    assert status == 400  # once 202 with every source: the chunked body was never read
    assert "unknown source bogus" in problem["detail"]
    status, accepted = _chunked_post(api, b'{"sources": ["csv"]}')
    assert status == 202
    assert accepted["data"]["sources"] == ["csv"]
    status, _ = _chunked_post(api, b'{"sources": [' + b'"csv",' * 3_000_000 + b'"csv"]}')
    assert status == 413  # 18 MB chunked: past the 64 KiB cap like a body that says its length


def test_slow_clients_cannot_hold_every_worker(api: str) -> None:
    """Clients sending their bodies a byte at a time each hold one thread of a gthread worker,
    never a whole worker: /live answers at once meanwhile."""
    import time

    host, port = urlsplit(api).hostname, urlsplit(api).port
    slow = []
    for _ in range(4):
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(
            b"POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        slow.append(sock)
    try:
        time.sleep(0.5)
        timings = []
        for _ in range(5):
            started = time.monotonic()
            with urllib.request.urlopen(f"{api}/live", timeout=10) as response:
                assert response.status == 200
            timings.append(time.monotonic() - started)
        assert max(timings) < 1.0, timings
    finally:
        for sock in slow:
            sock.close()
