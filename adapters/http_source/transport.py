"""JSON over HTTP from a provider: rate-limited, retried with backoff, bounded, and counted.

Retried (stamina, exponential backoff with jitter, bounded attempts and total time): timeouts,
connection errors, 408, 429 and 5xx, and bodies that are not valid JSON (a truncated
transfer). `Retry-After` (seconds or an HTTP date) replaces the backoff when present, up to a
cap. Not retried: 401, 402, 403 and other 4xx, an unknown host, an oversized body. Messages
never carry the API key (it travels in a header, never in the URL).
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import stamina

from adapters.http_headers import retry_after_seconds
from adapters.http_source.rate_limit import RateGate
from domain.runs import SourceCounters

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# the headers a provider key travels in
SECRET_HEADERS = frozenset({"authorization", "x-cg-pro-api-key", "x-cg-demo-api-key", "x-mbx-apikey"})


class ProviderError(Exception):
    """The provider could not give what was asked; the message is safe to show."""


class ProviderRefused(ProviderError):
    """An answer that retrying will not change: a refused key, a spent quota, a bad request.

    `status` is the HTTP status (None: refused before an answer, e.g. too large), `detail` the
    provider's own error message when its body carried one (at most 300 characters)."""

    def __init__(self, message: str, status: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class RetryableResponse(ProviderError):
    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SlowResponse(ProviderError):
    """The answer took longer than the request's total deadline (a body trickling in): not
    retried, since a provider that slow holds the whole run."""


class MalformedResponse(ProviderError):
    """The body is not the JSON it should be (truncated, or an HTML page)."""


@attrs.frozen
class RetryPolicy:
    attempts: int = 5
    total_seconds: float = 60.0
    wait_initial: float = 0.5
    wait_max: float = 10.0
    max_retry_after: float = 60.0


@attrs.define
class RequestTally:
    """Requests, retries and rate-limit waits since the last `take()`."""

    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    responses: dict[str, int] = attrs.Factory(dict)

    def answered(self, status: str) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1

    def take_responses(self) -> dict[str, int]:
        taken, self.responses = self.responses, {}
        return taken

    def take(self) -> SourceCounters:
        counters = SourceCounters(
            http_requests=self.requests, retries=self.retries, rate_limit_waits=self.rate_limit_waits
        )
        self.requests = self.retries = self.rate_limit_waits = 0
        return counters


class ProviderClient:
    """One provider's HTTP client; the `httpx.Client` (with its transport) is given, not built."""

    def __init__(
        self,
        name: str,
        client: httpx.Client,
        bucket: RateGate,
        policy: RetryPolicy | None = None,
        max_bytes: int = 50 * 1024 * 1024,
        deadline_seconds: float = 60.0,
    ) -> None:
        self.name = name
        self._client = client
        self._bucket = bucket
        self._policy = policy or RetryPolicy()
        self._max_bytes = max_bytes
        self._deadline = deadline_seconds
        self.tally = RequestTally()

    def get_json(
        self, path: str, params: Mapping[str, str | int] | None = None, max_bytes: int | None = None
    ) -> Any:
        """The answer's JSON; `max_bytes` bounds this answer below the client's own limit (a page
        of 250 coins has no business being 49 MB)."""
        policy = self._policy
        for attempt in stamina.retry_context(
            on=self._should_retry,
            attempts=policy.attempts,
            timeout=policy.total_seconds,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
        ):
            with attempt:
                return self._get_once(path, params, min(max_bytes or self._max_bytes, self._max_bytes))
        raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover

    def close(self) -> None:
        self._client.close()

    def _get_once(self, path: str, params: Mapping[str, str | int] | None, limit: int) -> Any:
        if self._bucket.acquire() > 0:
            self.tally.rate_limit_waits += 1
        self.tally.requests += 1
        try:
            return self._answer(path, params, limit)
        except httpx.TransportError:
            self.tally.answered("error")
            raise

    def _answer(self, path: str, params: Mapping[str, str | int] | None, limit: int) -> Any:
        started = time.monotonic()
        with self._client.stream("GET", path, params=params) as response:
            self.tally.answered(str(response.status_code))
            body = self._read_bounded(response, started, limit)
            status = response.status_code
            where = f"GET {response.request.url.path}"
            if status == 200:
                return _parse_json(body, response, where)
            html = "text/html" in response.headers.get("content-type", "")
            page = " (an HTML page, not JSON: likely a firewall or CDN block)" if html else ""
            if status in RETRYABLE_STATUSES or status >= 500:
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                raise RetryableResponse(f"{where} answered {status}{page}", status, retry_after)
            detail = None if html else self._redacted(_error_message(body))
            said = f" (the provider says: {detail})" if detail else ""
            raise ProviderRefused(
                f"{where} answered {status}: {_explain(status)}{page}{said}", status, detail
            )

    def _redacted(self, text: str | None) -> str | None:
        """The provider's words without our key in them (a provider may echo a refused key)."""
        if text is None:
            return None
        for name, value in self._client.headers.items():
            if name.lower() in SECRET_HEADERS and len(value) >= 4:
                text = text.replace(value, "[redacted]")
        return text

    def _read_bounded(self, response: httpx.Response, started: float, limit: int) -> bytes:
        """The body, within the size limit and the request's total deadline (connect, headers
        and body together: httpx's timeouts bound each read, not the whole)."""
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ProviderRefused(f"response of {int(declared):,} bytes exceeds the {limit:,}-byte limit")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise ProviderRefused(f"response exceeds the {limit:,}-byte limit")
            if time.monotonic() - started > self._deadline:
                raise SlowResponse(
                    f"GET {response.request.url.path} took longer than {self._deadline:g} s "
                    f"(HTTP_DEADLINE_SECONDS) after {size:,} bytes: the provider is trickling its answer"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _should_retry(self, ex: Exception) -> bool | float:
        """stamina's hook: False to give up, True for backoff, or the seconds `Retry-After` asks."""
        if isinstance(ex, RetryableResponse):
            if ex.retry_after is not None and ex.retry_after > self._policy.max_retry_after:
                return False
            self.tally.retries += 1
            if ex.status == 429:
                self.tally.rate_limit_waits += 1
            if ex.retry_after is not None and ex.status in (429, 503):
                # every process sharing this provider's budget waits, not only this one; this
                # process's own wait is stamina's, which the next `acquire` then finds spent
                self._bucket.hold(ex.retry_after)
            return ex.retry_after if ex.retry_after is not None else True
        if isinstance(ex, MalformedResponse) or (
            isinstance(ex, httpx.TransportError) and not _unresolvable(ex)
        ):
            self.tally.retries += 1
            return True
        return False


@attrs.frozen
class Unstorable:
    """A number as a provider sent it that no stored number can be: `NaN`, `Infinity`, `1e309`
    (past a double), `1e-400` (a non-zero literal that would underflow to 0). Kept as its text so
    the element it is in can be quarantined with it, instead of failing the database's COPY."""

    literal: str


def _number(text: str) -> float | Unstorable:
    value = float(text)
    if math.isinf(value) or (
        value == 0.0 and any(digit in "123456789" for digit in text.partition("e")[0].partition("E")[0])
    ):
        return Unstorable(text)
    return value


def _parse_json(body: bytes, response: httpx.Response, where: str) -> Any:
    try:
        return json.loads(body, parse_float=_number, parse_constant=Unstorable)
    except (json.JSONDecodeError, UnicodeDecodeError) as ex:
        kind = "an HTML page" if "text/html" in response.headers.get("content-type", "") else "invalid JSON"
        reason = ex.msg if isinstance(ex, json.JSONDecodeError) else "not UTF-8"
        raise MalformedResponse(f"{where} answered 200 with {kind} ({len(body):,} bytes; {reason})") from ex


def _unresolvable(ex: httpx.TransportError) -> bool:
    """An unknown host is not going to appear on retry: fail fast (also with no network at all)."""
    cause: BaseException | None = ex
    while cause is not None:
        if isinstance(cause, socket.gaierror) and cause.errno in (
            socket.EAI_NONAME,
            getattr(socket, "EAI_NODATA", -5),
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return "Name or service not known" in str(ex) or "nodename nor servname" in str(ex)


def _error_message(body: bytes) -> str | None:
    """The message of a JSON error body, as providers word it: `{"error": "..."}` (CoinPaprika),
    `{"error": {"status": {"error_message": "..."}}}` or `{"status": {...}}` (CoinGecko),
    `{"code": -1121, "msg": "..."}` (Binance). At most 300 characters, one line."""
    try:
        document = json.loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        return None
    found: object = None
    if isinstance(document, dict):
        error = document.get("error", document)
        status = error.get("status") if isinstance(error, dict) else None
        for candidate in (
            status.get("error_message") if isinstance(status, dict) else None,
            error.get("error_message") if isinstance(error, dict) else None,
            error if isinstance(error, str) else None,
            document.get("msg"),
            document.get("message"),
        ):
            if isinstance(candidate, str) and candidate.strip():
                found = candidate
                break
    if not isinstance(found, str):
        return None
    text = " ".join(found.split())
    return text[:297] + "..." if len(text) > 300 else text


def _explain(status: int) -> str:
    return {
        400: "the request was refused as malformed",
        401: "the API key is missing or was refused",
        402: "payment required: the plan's quota is spent or the endpoint needs a paid plan",
        403: "forbidden: the API key was refused or the plan does not allow this",
        404: "not found: check the base URL",
    }.get(status, "the request was refused")
