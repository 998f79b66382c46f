"""History backfill, planned: which windows of which asset to ask which provider for.

A backfill job asks for the bars of some assets at one interval over a range, from some
providers. It is cut into windows, one request each: a window is as long as the provider
answers at that interval in one page (CoinGecko picks the granularity from the range's length;
Binance gives at most 1,000 klines). Planning is pure: the range, the provider's page, what is
already stored (with `gaps_only`) and what the provider confirmed empty give the windows.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from domain.assets import Interval, bucket_of
from domain.coverage import Span, without


class WindowState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"  # its bars are stored
    EMPTY = "empty"  # the provider answered with no bars: confirmed empty, not asked again
    REFUSED = "refused"  # the provider's plan does not reach it (the error names the limit)
    FAILED = "failed"  # it kept failing (the error says how)


SETTLED = frozenset({WindowState.DONE, WindowState.EMPTY, WindowState.REFUSED, WindowState.FAILED})


@attrs.frozen
class HistoryTarget:
    """One asset's history at one provider: how the provider names the asset."""

    asset_id: int
    symbol: str
    kind: str
    provider_id: str


@attrs.frozen
class PlannedWindow:
    target: HistoryTarget
    interval: Interval
    start: datetime
    end: datetime  # exclusive


@attrs.frozen
class Window:
    """A window as the queue holds it."""

    id: int
    job_id: int
    asset_id: int
    symbol: str
    kind: str
    provider_id: str
    interval: Interval
    start: datetime
    end: datetime
    state: WindowState = WindowState.PENDING
    attempts: int = 0

    @property
    def source(self) -> str:
        return history_source(self.kind, self.interval)


def history_source(kind: str, interval: Interval | str) -> str:
    """The source a provider's history at an interval is stored under: `coingecko:1d`. Not the
    provider's snapshot source (`coingecko`): its bars are compared with the snapshots', and a
    snapshot run is never mistaken for a history window."""
    return f"{kind}:{Interval(interval).value}"


@attrs.frozen
class BackfillRequest:
    symbols: tuple[str, ...]
    kinds: tuple[str, ...]
    interval: Interval
    since: datetime
    until: datetime
    gaps_only: bool = False


@attrs.frozen
class WindowCounts:
    pending: int = 0
    running: int = 0
    done: int = 0
    empty: int = 0
    refused: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.running + self.done + self.empty + self.refused + self.failed

    @property
    def settled(self) -> int:
        return self.done + self.empty + self.refused + self.failed


class JobState(enum.StrEnum):
    QUEUED = "queued"  # no window taken yet
    RUNNING = "running"
    SUCCESS = "success"  # every window stored or confirmed empty
    PARTIAL = "partial"  # settled, some refused or failed
    FAILED = "failed"  # settled, nothing stored


@attrs.frozen
class BackfillJob:
    id: int
    request: BackfillRequest
    created_at: datetime
    windows: WindowCounts
    bars: int
    requests: int
    problems: tuple[str, ...] = ()  # what could not be planned (an asset no provider id is known for)
    errors: tuple[str, ...] = ()  # distinct errors of refused and failed windows, first ones
    finished_at: datetime | None = None

    @property
    def state(self) -> JobState:
        counts = self.windows
        if counts.settled < counts.total:
            return JobState.QUEUED if counts.settled == 0 and counts.running == 0 else JobState.RUNNING
        if counts.refused or counts.failed or self.problems:
            return JobState.FAILED if counts.done == 0 and counts.empty == 0 else JobState.PARTIAL
        return JobState.SUCCESS


def cut(start: datetime, end: datetime, span: timedelta, step: timedelta) -> list[tuple[datetime, datetime]]:
    """`[start, end)` as windows of at most `span`, on bucket boundaries of `step` (the first
    from the bucket of `start`, the last to the end of the bucket holding `end`'s last moment)."""
    first = bucket_of(start, step)
    stop = bucket_of(end - timedelta(microseconds=1), step) + step if end > start else first
    span = max(step, span // step * step)
    windows = []
    moment = first
    while moment < stop:
        windows.append((moment, min(moment + span, stop)))
        moment += span
    return windows


def plan_windows(
    target: HistoryTarget,
    interval: Interval,
    wanted: Sequence[tuple[datetime, datetime]],
    span: timedelta,
    empty: Sequence[Span] = (),
) -> list[PlannedWindow]:
    """The windows to ask for: each wanted range (the whole request, or its gaps) cut to the
    provider's page, less the ranges the provider confirmed empty."""
    step = interval.step
    planned = []
    for start, end in without(list(wanted), sorted(empty, key=lambda span_: span_.start)):
        for first, stop in cut(start, end, span, step):
            planned.append(PlannedWindow(target, interval, first, stop))
    return planned
