"""One rate budget per provider for the whole deployment, kept in PostgreSQL.

A token bucket in one row (`provider_budgets`): each request reserves a token with one short
UPDATE, whatever process it comes from (the scheduler, a backfill beside it, several replicas),
so together they never exceed the provider's configured rate. A reservation may leave the
bucket below zero: the request then waits its turn (the deficit over the rate) before it goes,
and the next one waits longer, so waiting requests are spaced exactly at the rate. A provider's
`Retry-After` is kept as `blocked_until`: every process waits it out, not only the one told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from adapters.postgres.pooling import Lender, store_errors

CREATE = """
INSERT INTO provider_budgets (provider, tokens, refilled_at) VALUES (%(provider)s, %(capacity)s, clock_timestamp())
ON CONFLICT (provider) DO NOTHING
"""
# refill by the time passed (never above the capacity), then take one token; the answer is how
# long this request must wait: its share of the deficit, or the provider's block, whichever is longer
RESERVE = """
UPDATE provider_budgets SET
    tokens = least(%(capacity)s, tokens + extract(epoch FROM clock_timestamp() - refilled_at) * %(rate)s) - 1,
    refilled_at = clock_timestamp()
WHERE provider = %(provider)s
RETURNING greatest(-tokens / %(rate)s, 0),
          greatest(extract(epoch FROM blocked_until - clock_timestamp()), 0)
"""
BLOCK = """
UPDATE provider_budgets SET blocked_until = greatest(coalesce(blocked_until, clock_timestamp()),
                                                     clock_timestamp() + %(hold)s)
WHERE provider = %(provider)s
"""


class PostgresRateBudget:
    """`acquire()` reserves one request of `provider`'s budget and sleeps until it may go; it
    returns the seconds waited (as the in-process `TokenBucket` does). `hold(seconds)` keeps
    every process from asking the provider for that long (its `Retry-After`)."""

    def __init__(
        self,
        pool: Lender,
        provider: str,
        per_minute: float,
        burst: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self._pool = pool
        self._provider = provider
        self._rate = per_minute / 60
        self._capacity = float(burst if burst is not None else max(1, min(10, int(per_minute // 6))))
        self._sleep = sleep
        self._created = False

    def acquire(self) -> float:
        params = {"provider": self._provider, "capacity": self._capacity, "rate": self._rate}
        with store_errors(), self._pool.connection() as connection:
            if not self._created:
                connection.execute(CREATE, params)
                self._created = True
            row = connection.execute(RESERVE, params).fetchone()
        wait = max(float(row[0]), float(row[1])) if row else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        with store_errors(), self._pool.connection() as connection:
            connection.execute(BLOCK, {"provider": self._provider, "hold": timedelta(seconds=seconds)})
