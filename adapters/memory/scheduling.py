"""Scheduling state in memory: queued run requests, schedule marks, and in-process locks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import attrs

from adapters.memory.state import State
from domain.requests import RequestStatus, RunRequest


class InMemoryRunRequestRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def add(
        self,
        sources: Sequence[str],
        requested_at: datetime,
        replay: bool = False,
        replay_reason: str | None = None,
    ) -> RunRequest:
        request = RunRequest(
            max(self._state.requests, default=0) + 1,
            tuple(sources),
            RequestStatus.QUEUED,
            requested_at,
            replay=replay,
            replay_reason=replay_reason,
        )
        self._state.requests[request.id] = request
        return request

    def claim_next(self, claimed_at: datetime) -> RunRequest | None:
        queued = [r for r in self._state.requests.values() if r.status is RequestStatus.QUEUED]
        if not queued:
            return None
        claimed = attrs.evolve(
            min(queued, key=lambda r: r.id), status=RequestStatus.RUNNING, claimed_at=claimed_at
        )
        self._state.requests[claimed.id] = claimed
        return claimed

    def complete(self, request_id: int, run_id: int | None, finished_at: datetime) -> None:
        self._state.requests[request_id] = attrs.evolve(
            self._state.requests[request_id],
            status=RequestStatus.DONE,
            run_id=run_id,
            finished_at=finished_at,
        )

    def get(self, request_id: int) -> RunRequest | None:
        return self._state.requests.get(request_id)

    def running_since_before(self, cutoff: datetime) -> list[int]:
        return sorted(
            request.id
            for request in self._state.requests.values()
            if request.status is RequestStatus.RUNNING and request.claimed_at and request.claimed_at < cutoff
        )

    def fail(self, request_id: int, error: str, finished_at: datetime) -> None:
        request = self._state.requests[request_id]
        if request.status is RequestStatus.RUNNING:
            self._state.requests[request_id] = attrs.evolve(
                request, status=RequestStatus.FAILED, error=error, finished_at=finished_at
            )


class InMemoryScheduleRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def last_started(self, kind: str) -> datetime | None:
        return self._state.schedule.get(kind)

    def mark_started(self, kind: str, started_at: datetime) -> None:
        self._state.schedule[kind] = started_at


class InMemorySourceLocks:
    """Locks within one process, for the use cases' unit tests."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        with self._guard:
            acquired = name not in self.held
            if acquired:
                self.held.add(name)
        try:
            yield acquired
        finally:
            if acquired:
                with self._guard:
                    self.held.discard(name)
