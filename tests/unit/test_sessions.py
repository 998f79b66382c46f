"""The dashboard's sign-in: a session cookie that is not the key, good for reads only, `Secure`
behind a trusted TLS proxy, and failed attempts throttled per client."""

from __future__ import annotations

import ipaddress

import falcon.testing
import pytest

from adapters.memory.reader import InMemoryHealthProbe, InMemoryRecordReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from entrypoints.api.app import ApiOptions, create_app
from entrypoints.api.auth import KEY_COOKIE, SESSION_SECONDS, ApiKeyGuard, LoginThrottle
from entrypoints.bootstrap import KINDS

KEY = "the-secret-key-123"


def client(store: InMemoryStore, trusted: str = "") -> falcon.testing.TestClient:
    networks = tuple(ipaddress.ip_network(item) for item in trusted.split(",") if item)
    options = ApiOptions(
        source_kinds=tuple(KINDS), api_keys=(KEY,), reads_need_key=True, trusted_proxies=networks
    )
    app = create_app(
        InMemoryRecordReader(store), InMemoryHealthProbe(), lambda: InMemoryUnitOfWork(store), options
    )
    return falcon.testing.TestClient(app)


def sign_in(test: falcon.testing.TestClient, key: str = KEY, **kwargs: object) -> falcon.testing.Result:
    return test.simulate_post(
        "/ui/login", body=f"key={key}&next=/ui/runs", headers={"Content-Type": "application/x-www-form-urlencoded",
        **kwargs.pop("headers", {})}, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_session_cookie_is_not_the_key_and_authorises_reads_but_never_a_write() -> None:
    test = client(InMemoryStore())
    answer = sign_in(test)
    assert answer.status_code == 303
    cookie = answer.cookies[KEY_COOKIE]
    assert KEY not in cookie.value
    assert cookie.http_only
    assert cookie.max_age == SESSION_SECONDS
    jar = {KEY_COOKIE: cookie.value}
    assert test.simulate_get("/data", cookies=jar).status_code == 200
    assert test.simulate_get("/ui/runs", cookies=jar).status_code == 200
    forged = test.simulate_post("/runs", json={"sources": ["csv"]}, cookies=jar)
    assert forged.status_code == 401  # a cross-site form post carries the cookie: it must not write
    assert (
        test.simulate_post("/runs", json={"sources": ["csv"]}, headers={"X-API-Key": KEY}).status_code == 202
    )
    assert (
        test.simulate_get("/data", cookies={KEY_COOKIE: KEY}).status_code == 401
    )  # the raw key is no session
    assert test.simulate_get("/data", cookies={KEY_COOKIE: cookie.value + "x"}).status_code == 401


def test_a_session_expires_and_ends_with_its_key() -> None:
    now = [1_000_000.0]
    guard = ApiKeyGuard([KEY], reads_need_key=True, clock=lambda: now[0])
    token = guard.session_for(KEY)
    assert guard._session_valid(token)
    now[0] += SESSION_SECONDS + 1
    assert not guard._session_valid(token)
    fresh = guard.session_for(KEY)
    assert not ApiKeyGuard(["another-key"], clock=lambda: now[0])._session_valid(fresh)  # key rotated out


@pytest.mark.parametrize(
    ("trusted", "peer", "proto", "secure"),
    [
        ("", "10.0.0.5", "https", False),  # anyone may send the header: it counts only from a trusted proxy
        ("10.0.0.0/8", "10.0.0.5", "https", True),
        ("10.0.0.0/8", "10.0.0.5", "http", False),
        ("10.0.0.0/8", "192.0.2.9", "https", False),
    ],
)
def test_the_cookie_is_secure_when_the_client_side_is_https_behind_a_trusted_proxy(
    trusted: str, peer: str, proto: str, secure: bool
) -> None:
    answer = sign_in(client(InMemoryStore(), trusted), remote_addr=peer, headers={"X-Forwarded-Proto": proto})
    assert answer.cookies[KEY_COOKIE].secure is secure


def test_failed_sign_ins_are_throttled_per_client() -> None:
    test = client(InMemoryStore(), "10.0.0.0/8")
    behind = {"X-Forwarded-For": "198.51.100.7"}
    for _ in range(5):
        assert sign_in(test, "wrong", remote_addr="10.0.0.5", headers=behind).status_code == 401
    blocked = sign_in(test, KEY, remote_addr="10.0.0.5", headers=behind)
    assert blocked.status_code == 429  # even the right key waits: guessing is slowed, not just failed
    assert 1 <= int(blocked.headers["Retry-After"]) <= 61
    other = sign_in(test, KEY, remote_addr="10.0.0.5", headers={"X-Forwarded-For": "198.51.100.8"})
    assert other.status_code == 303  # another client behind the same proxy is not blocked


def test_the_throttle_forgets_after_its_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(attempts=2, window=60, clock=lambda: now[0])
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.wait_seconds("a") == 60
    now[0] = 61
    assert throttle.wait_seconds("a") == 0
