"""Pieces of the HTTP source adapter that need no server: the token bucket, Retry-After, DNS failures."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from adapters.http_headers import retry_after_seconds as _retry_after
from adapters.http_source.rate_limit import TokenBucket
from adapters.http_source.transport import _unresolvable


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_bucket_allows_its_burst_then_paces_requests() -> None:
    time = FakeTime()
    bucket = TokenBucket(per_minute=60, burst=3, clock=time.clock, sleep=time.sleep)
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.acquire() == pytest.approx(1.0)
    assert bucket.acquire() == pytest.approx(1.0)
    time.now += 10  # idle time refills up to the burst only
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.acquire() == pytest.approx(1.0)


def test_the_default_burst_is_a_tenth_of_a_minute_capped() -> None:
    assert TokenBucket(per_minute=25).capacity == 4
    assert TokenBucket(per_minute=6000).capacity == 10
    assert TokenBucket(per_minute=1).capacity == 1
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(per_minute=0)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert _retry_after("5") == 5.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after(later) or 0) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert _retry_after(past) == 0.0


def test_an_unknown_host_is_recognised_so_it_fails_fast() -> None:
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as cause:
        error = httpx.ConnectError("[Errno -2] Name or service not known")
        error.__cause__ = cause
    assert _unresolvable(error)
    assert not _unresolvable(httpx.ConnectError("[Errno 111] Connection refused"))
