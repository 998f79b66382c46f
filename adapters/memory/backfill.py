"""The backfill queue in memory: the same rules as PostgreSQL's, for unit tests and notebooks."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from adapters.memory.state import InMemoryStore
from domain.assets import Interval
from domain.backfill import (
    BackfillJob,
    BackfillRequest,
    PlannedWindow,
    Window,
    WindowCounts,
    WindowState,
)
from domain.coverage import Span
from domain.runs import RunStatus


@attrs.define
class _Job:
    id: int
    request: BackfillRequest
    problems: tuple[str, ...]
    created_at: datetime


@attrs.define
class _Window:
    window: Window
    run_id: int | None = None
    bars: int = 0
    requests: int = 0
    error: str | None = None
    settled_at: datetime | None = None


class InMemoryBackfillQueue:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._jobs: dict[int, _Job] = {}
        self._windows: dict[int, _Window] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def create(
        self,
        request: BackfillRequest,
        windows: Sequence[PlannedWindow],
        problems: Sequence[str],
        now: datetime,
    ) -> int:
        with self._lock:
            job_id = next(self._ids)
            self._jobs[job_id] = _Job(job_id, request, tuple(problems), now)
            for planned in windows:
                window_id = next(self._ids)
                target = planned.target
                self._windows[window_id] = _Window(
                    Window(window_id, job_id, target.asset_id, target.symbol, target.kind, target.provider_id,
                           planned.interval, planned.start, planned.end)
                )  # fmt: skip
            return job_id

    def _free(self, item: _Window) -> bool:
        state = item.window.state
        if state is WindowState.PENDING:
            return True
        if state is not WindowState.RUNNING or item.run_id is None:
            return False
        run = self._store.state.runs.get(item.run_id)
        return run is None or run.status is not RunStatus.RUNNING

    def claim(self, kind: str, interval: Interval, run_id: int) -> Window | None:
        with self._lock:
            for item in sorted(self._windows.values(), key=lambda i: (i.window.job_id, i.window.id)):
                window = item.window
                if window.kind == kind and window.interval == Interval(interval) and self._free(item):
                    item.window = attrs.evolve(
                        window, state=WindowState.RUNNING, attempts=window.attempts + 1
                    )
                    item.run_id = run_id
                    return item.window
            return None

    def settle(
        self, window_id: int, state: WindowState, bars: int, requests: int, error: str | None, now: datetime
    ) -> None:
        with self._lock:
            item = self._windows[window_id]
            item.window = attrs.evolve(item.window, state=state)
            item.bars, item.requests, item.error, item.settled_at = bars, item.requests + requests, error, now

    def release(self, window_id: int, error: str, max_attempts: int, now: datetime) -> None:
        with self._lock:
            item = self._windows[window_id]
            failed = item.window.attempts >= max_attempts
            item.window = attrs.evolve(
                item.window, state=WindowState.FAILED if failed else WindowState.PENDING
            )
            item.requests += 1
            item.error = error
            item.settled_at = now if failed else None

    def pending(self) -> list[tuple[str, Interval, int]]:
        with self._lock:
            counts: dict[tuple[str, Interval], int] = {}
            for item in self._windows.values():
                if self._free(item):
                    key = (item.window.kind, item.window.interval)
                    counts[key] = counts.get(key, 0) + 1
            return [(kind, interval, count) for (kind, interval), count in sorted(counts.items())]

    def empty_ranges(self, asset_id: int, kind: str, interval: Interval) -> list[Span]:
        with self._lock:
            step = Interval(interval).step
            return sorted(
                (
                    Span(item.window.start, item.window.end, (item.window.end - item.window.start) // step)
                    for item in self._windows.values()
                    if item.window.state is WindowState.EMPTY
                    and (item.window.asset_id, item.window.kind, item.window.interval)
                    == (asset_id, kind, Interval(interval))
                ),
                key=lambda span: span.start,
            )

    def job(self, job_id: int) -> BackfillJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else self._view(job)

    def jobs(self, limit: int) -> list[BackfillJob]:
        with self._lock:
            return [self._view(job) for job in sorted(self._jobs.values(), key=lambda j: -j.id)[:limit]]

    def _view(self, job: _Job) -> BackfillJob:
        items = [item for item in self._windows.values() if item.window.job_id == job.id]
        by_state = {state: sum(1 for i in items if i.window.state is state) for state in WindowState}
        counts = WindowCounts(*(by_state[state] for state in WindowState))
        errors = tuple(
            dict.fromkeys(
                i.error
                for i in sorted(items, key=lambda i: i.window.id)
                if i.error and i.window.state in (WindowState.REFUSED, WindowState.FAILED)
            )
        )[:10]
        settled = [i.settled_at for i in items if i.settled_at is not None]
        return BackfillJob(
            id=job.id,
            request=job.request,
            created_at=job.created_at,
            windows=counts,
            bars=sum(i.bars for i in items),
            requests=sum(i.requests for i in items),
            problems=job.problems,
            errors=errors,
            finished_at=(max(settled, default=job.created_at)) if counts.settled == counts.total else None,
        )
