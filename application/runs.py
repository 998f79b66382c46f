"""Run history: the use cases behind `/runs` and `/runs/{id}`."""

from __future__ import annotations

from application.errors import NotFound
from application.ports import ReportingUnits, RunHistory
from domain.requests import RunRequest
from domain.runs import EtlRun, RunStatus


def list_runs(
    uow_factory: ReportingUnits, limit: int, status: RunStatus | None = None, source: str | None = None
) -> list[EtlRun]:
    with uow_factory() as uow:
        return uow.runs.recent(limit, status, source)


def get_run(uow_factory: ReportingUnits, run_id: int) -> EtlRun:
    with uow_factory() as uow:
        run = uow.runs.get(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return run


def get_run_request(uow_factory: ReportingUnits, request_id: int) -> RunRequest:
    with uow_factory() as uow:
        request = uow.requests.get(request_id)
    if request is None:
        raise NotFound(f"no run request with id {request_id}")
    return request


def run_before(uow_factory: ReportingUnits, run_id: int) -> EtlRun | None:
    """The newest run before `run_id` that read one of its sources (what the dashboard compares
    a run with), if any: with a run per source kind, the run just before may share nothing."""
    with uow_factory() as uow:
        run = uow.runs.get(run_id)
        if run is None:
            raise NotFound(f"no run with id {run_id}")
        return previous_sharing_a_source(uow.runs, run)


def previous_sharing_a_source(runs: RunHistory, run: EtlRun) -> EtlRun | None:
    """The newest run before `run` that read at least one of the same sources."""
    candidates = [
        earlier for item in run.sources for earlier in runs.recent(1, source=item.source, before=run.id)
    ]
    return max(candidates, key=lambda earlier: earlier.id, default=None)
