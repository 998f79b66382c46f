"""API keys: state-changing requests need `X-API-Key`; reads are public unless configured not to be."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import falcon

OPEN_PATHS = frozenset(
    {"/health", "/ready", "/live", "/metrics", "/openapi.json", "/docs", "/docs/init.js", "/ui/login"}
)
OPEN_PREFIXES = ("/docs/static/", "/ui/static/")
KEY_COOKIE = "kaspero_key"  # set by the dashboard's sign-in form


class ApiKeyGuard:
    """Checks `X-API-Key`. No key exists by default: with none configured, guarded calls answer 403.

    As middleware it guards reads when `reads_need_key` is set (never the probes or `/metrics`);
    writes are guarded by `require_key` on each responder that changes state.
    """

    def __init__(self, keys: Sequence[str], reads_need_key: bool = False) -> None:
        self._keys = [key.encode() for key in keys if key]
        self._reads_need_key = reads_need_key

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
                and not self.accepts(_given(req))
            ):
                # a person at the dashboard: to the sign-in form, then back here
                target = req.path + (f"?{req.query_string}" if req.query_string else "")
                raise falcon.HTTPSeeOther(f"/ui/login?next={quote(target)}")
            self.check(req)

    def accepts(self, given: str) -> bool:
        """Whether `given` is one of the keys, compared in constant time with every key."""
        encoded = given.encode()
        matched = [hmac.compare_digest(encoded, key) for key in self._keys]
        return bool(given) and any(matched)

    def check(self, req: falcon.Request) -> None:
        if not self._keys:
            raise falcon.HTTPForbidden(
                title="Forbidden",
                description="this endpoint needs an API key, and none is configured: set API_KEYS on the server",
            )
        # compare with every key, in constant time, so timing tells nothing about near misses
        if not self.accepts(_given(req)):
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description="a valid X-API-Key header is required",
                challenges=['ApiKey header="X-API-Key"'],
            )


def require_key(req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]) -> None:
    """A falcon `before` hook: the resource's `guard` checks the request's key."""
    resource.guard.check(req)


def _given(req: falcon.Request) -> str:
    """The key a request carries: the `X-API-Key` header, else the dashboard's cookie."""
    header = req.get_header("X-API-Key")
    if header:
        return header
    cookies = req.get_cookie_values(KEY_COOKIE) or []
    return cookies[0] if cookies else ""
