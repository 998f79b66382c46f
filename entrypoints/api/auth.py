"""API keys: state-changing requests need `X-API-Key`; reads are public unless configured not to be.

The dashboard's sign-in gives a session cookie: a signed, expiring token (never the key itself),
good for reads only. A change of state (`POST /runs`) needs the header, so a page of another
site (or another port of this host, the same "site" to a browser) cannot make a signed-in
browser write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import falcon

OPEN_PATHS = frozenset(
    {"/health", "/ready", "/live", "/metrics", "/openapi.json", "/docs", "/docs/init.js", "/ui/login"}
)
OPEN_PREFIXES = ("/docs/static/", "/ui/static/")
KEY_COOKIE = "kaspero_session"  # set by the dashboard's sign-in form: a signed token, not the key
SESSION_SECONDS = 12 * 3600


class ApiKeyGuard:
    """Checks `X-API-Key`. No key exists by default: with none configured, guarded calls answer 403.

    As middleware it guards reads when `reads_need_key` is set (never the probes or `/metrics`);
    writes are guarded by `require_key` on each responder that changes state.
    """

    def __init__(
        self, keys: Sequence[str], reads_need_key: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = [key.encode() for key in keys if key]
        self._reads_need_key = reads_need_key
        self._clock = clock

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if (
            self._reads_need_key
            and req.method in ("GET", "HEAD")
            and req.path not in OPEN_PATHS
            and not req.path.startswith(OPEN_PREFIXES)
        ):
            if (
                (req.path == "/" or req.path.startswith("/ui/"))
                and self._keys
                and not self._allowed(req, reads=True)
            ):
                # a person at the dashboard: to the sign-in form, then back here
                target = req.path + (f"?{req.query_string}" if req.query_string else "")
                raise falcon.HTTPSeeOther(f"/ui/login?next={quote(target)}")
            self.check(req, reads=True)

    def accepts(self, given: str) -> bool:
        """Whether `given` is one of the keys, compared in constant time with every key."""
        encoded = given.encode()
        matched = [hmac.compare_digest(encoded, key) for key in self._keys]
        return bool(given) and any(matched)

    def session_for(self, key: str) -> str:
        """A session token for a key that `accepts`: when it expires, a nonce, and a MAC under
        the key; the key itself is not in it, and a key removed from API_KEYS ends its sessions."""
        body = f"{int(self._clock()) + SESSION_SECONDS}.{secrets.token_urlsafe(12)}"
        return f"{body}.{_mac(key.encode(), body)}"

    def _session_valid(self, token: str) -> bool:
        body, _, mac = token.rpartition(".")
        expires = body.partition(".")[0]
        if not mac or not expires.isdigit() or int(expires) < self._clock():
            return False
        matched = [hmac.compare_digest(mac, _mac(key, body)) for key in self._keys]
        return any(matched)

    def _allowed(self, req: falcon.Request, reads: bool) -> bool:
        header = req.get_header("X-API-Key")
        if header:
            return self.accepts(header)
        if not reads:  # a cookie never authorises a write
            return False
        cookies = req.get_cookie_values(KEY_COOKIE) or []
        return bool(cookies) and self._session_valid(cookies[0])

    def check(self, req: falcon.Request, reads: bool = False) -> None:
        if not self._keys:
            raise falcon.HTTPForbidden(
                title="Forbidden",
                description="this endpoint needs an API key, and none is configured: set API_KEYS on the server",
            )
        # compare with every key, in constant time, so timing tells nothing about near misses
        if not self._allowed(req, reads):
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description="a valid X-API-Key header is required",
                challenges=['ApiKey header="X-API-Key"'],
            )


def require_key(req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]) -> None:
    """A falcon `before` hook: the resource's `guard` checks the request's key."""
    resource.guard.check(req)


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(hashlib.sha256(b"kaspero-session:" + key).digest(), body.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


class LoginThrottle:
    """At most `attempts` failed sign-ins per client in `window` seconds (per API worker)."""

    def __init__(
        self, attempts: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._attempts, self._window, self._clock = attempts, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """0 when `client` may try now, else how long until it may."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self._attempts:
                return 0.0
            return max(0.0, recent[0] + self._window - self._clock())

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self._clock())
            if len(self._failures) > 10_000:  # bounded whatever the number of clients
                for name in list(self._failures):
                    if not self._recent(name):
                        del self._failures[name]

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= self._clock() - self._window:
            times.popleft()
        return times
