"""Queueing work for the schedulers: a run of some sources, or a replay of the quarantine. What
the API does for `POST /runs` and `POST /quarantine/replay`; the schedulers claim the requests
(`application.scheduling`), so no ETL runs in the API's process."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import Clock, QueueUnits


def request_run(uow_factory: QueueUnits, clock: Clock, sources: Sequence[str]) -> int:
    """Queue a run of `sources` (empty: every source) for the schedulers; return the request id."""
    with uow_factory() as uow:
        request = uow.requests.add(sources, clock())
        uow.commit()
    return request.id


def request_replay(uow_factory: QueueUnits, clock: Clock, source: str | None, reason: str | None) -> int:
    """Queue a replay of the quarantine (one source's, or every enabled one's) for the schedulers."""
    with uow_factory() as uow:
        request = uow.requests.add([source] if source else [], clock(), replay=True, replay_reason=reason)
        uow.commit()
    return request.id
