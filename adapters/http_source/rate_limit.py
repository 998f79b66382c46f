"""A provider's rate budget: requests per minute, with a small burst.

`TokenBucket` keeps it in this process (tests, in-memory use); with a database, the composition
root gives every client the deployment-wide budget kept in PostgreSQL instead
(`adapters/postgres/budget.py`), which has the same two methods (`RateGate`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class RateGate(Protocol):
    def acquire(self) -> float:
        """Take one request's token, sleeping until there is one; return the seconds waited."""
        ...

    def hold(self, seconds: float) -> None:
        """Ask nothing of the provider for `seconds` (its `Retry-After`)."""
        ...


class TokenBucket:
    """`acquire()` takes one token, sleeping until one is there; it returns the seconds waited."""

    def __init__(
        self,
        per_minute: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate_per_second = per_minute / 60
        self.capacity = float(burst if burst is not None else max(1, min(10, int(per_minute // 6))))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def acquire(self) -> float:
        with self._lock:
            blocked = self._blocked_until - self._clock()
            if blocked > 0:
                self._sleep(blocked)
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_second)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return max(blocked, 0.0)
            wait = (1 - self._tokens) / self.rate_per_second
            self._sleep(wait)
            self._tokens = 0.0
            self._updated = self._clock()
            return wait + max(blocked, 0.0)
