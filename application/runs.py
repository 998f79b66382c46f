"""Run history: the use cases behind `/runs` and `/runs/{id}`."""

from __future__ import annotations

from application.errors import NotFound
from application.ports import UnitOfWorkFactory
from domain.requests import RunRequest
from domain.runs import EtlRun, RunStatus


def list_runs(
    uow_factory: UnitOfWorkFactory, limit: int, status: RunStatus | None = None, source: str | None = None
) -> list[EtlRun]:
    with uow_factory() as uow:
        return uow.runs.recent(limit, status, source)


def get_run(uow_factory: UnitOfWorkFactory, run_id: int) -> EtlRun:
    with uow_factory() as uow:
        run = uow.runs.get(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return run


def get_run_request(uow_factory: UnitOfWorkFactory, request_id: int) -> RunRequest:
    with uow_factory() as uow:
        request = uow.requests.get(request_id)
    if request is None:
        raise NotFound(f"no run request with id {request_id}")
    return request


def run_before(uow_factory: UnitOfWorkFactory, run_id: int) -> EtlRun | None:
    """The run just before `run_id` (what the dashboard compares a run with), if any."""
    with uow_factory() as uow:
        earlier = uow.runs.recent(1, before=run_id)
    return earlier[0] if earlier else None
