"""Scheduling on the fakes: due kinds run once, locked kinds are skipped, requests run once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from adapters.memory.scheduling import InMemorySourceLocks
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from application.requests import request_run
from application.scheduling import lock_name, run_due_sources, run_requested
from domain.requests import RequestStatus
from domain.runs import EtlRun, RunStatus, RunTrigger


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Runner:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], RunTrigger]] = []

    def __call__(self, kinds: Sequence[str], trigger: RunTrigger) -> EtlRun:
        self.calls.append((tuple(kinds), trigger))
        return EtlRun(len(self.calls), trigger, datetime(2024, 1, 1, tzinfo=UTC), RunStatus.SUCCESS)


def test_each_kind_runs_when_due_and_not_again_within_its_interval() -> None:
    store, clock, runner, locks = InMemoryStore(), Clock(), Runner(), InMemorySourceLocks()
    intervals = {"coingecko": timedelta(minutes=2), "csv": timedelta(minutes=10)}

    def tick() -> list[tuple[str, ...]]:
        before = len(runner.calls)
        run_due_sources(intervals, locks, lambda: InMemoryUnitOfWork(store), clock, runner)
        return [kinds for kinds, _ in runner.calls[before:]]

    assert tick() == [("coingecko",), ("csv",)]
    clock.now += timedelta(minutes=1)
    assert tick() == []
    clock.now += timedelta(minutes=1)
    assert tick() == [("coingecko",)]
    clock.now += timedelta(minutes=8)
    assert tick() == [("coingecko",), ("csv",)]
    assert {trigger for _, trigger in runner.calls} == {RunTrigger.SCHEDULE}


def test_a_kind_locked_by_another_replica_is_skipped() -> None:
    store, clock, runner, locks = InMemoryStore(), Clock(), Runner(), InMemorySourceLocks()
    with locks.hold(lock_name("csv")) as acquired:
        assert acquired
        run_due_sources(
            {"csv": timedelta(minutes=5)}, locks, lambda: InMemoryUnitOfWork(store), clock, runner
        )
    assert runner.calls == []
    run_due_sources({"csv": timedelta(minutes=5)}, locks, lambda: InMemoryUnitOfWork(store), clock, runner)
    assert runner.calls == [(("csv",), RunTrigger.SCHEDULE)]


def test_a_queued_request_runs_once_with_its_sources() -> None:
    store, clock, runner, locks = InMemoryStore(), Clock(), Runner(), InMemorySourceLocks()
    uow = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    first = request_run(uow, clock, ["csv"])
    second = request_run(uow, clock, [])
    assert run_requested(["coingecko", "csv"], locks, uow, clock, runner) is not None
    assert run_requested(["coingecko", "csv"], locks, uow, clock, runner) is not None
    assert run_requested(["coingecko", "csv"], locks, uow, clock, runner) is None
    assert runner.calls == [(("csv",), RunTrigger.MANUAL), (("coingecko", "csv"), RunTrigger.MANUAL)]
    with uow() as unit:
        done = [unit.requests.get(first), unit.requests.get(second)]
    assert [(r.status, r.run_id) for r in done if r] == [(RequestStatus.DONE, 1), (RequestStatus.DONE, 2)]


def test_a_running_run_whose_lock_is_free_is_closed_and_a_live_one_is_not() -> None:
    from adapters.memory.store import InMemoryUnitOfWork as Uow
    from application.recovery import close_abandoned_runs, run_lock_name

    store, clock, locks = InMemoryStore(), Clock(), InMemorySourceLocks()
    with Uow(store) as uow:
        dead = uow.runs.start(RunTrigger.SCHEDULE, clock.now)
        uow.runs.start_source(dead, "csv:x", clock.now)
        alive = uow.runs.start(RunTrigger.SCHEDULE, clock.now)
        uow.commit()
    clock.now += timedelta(minutes=5)
    with Uow(store) as uow:
        young = uow.runs.start(RunTrigger.SCHEDULE, clock.now)
        uow.commit()
    with locks.hold(run_lock_name(alive)):
        closed = close_abandoned_runs(lambda: Uow(store), locks, clock, grace=timedelta(minutes=1))
    assert closed == [dead]
    with Uow(store) as uow:
        runs = {run_id: uow.runs.get(run_id) for run_id in (dead, alive, young)}
    assert runs[dead].status is RunStatus.FAILED
    assert runs[dead].error.startswith("interrupted")
    assert [s.status for s in runs[dead].sources] == [RunStatus.FAILED]
    assert runs[alive].status is RunStatus.RUNNING
    assert runs[young].status is RunStatus.RUNNING


def test_the_scheduler_outlives_a_database_that_fails_and_comes_back(tmp_path) -> None:
    """Every call to the database fails for a while (an outage): the scheduler logs, backs
    off, and runs the due source once the database answers again; it never exits."""
    import threading

    from entrypoints.bootstrap import build
    from entrypoints.scheduler import Backoff, run_scheduler
    from entrypoints.settings import Settings
    from tests.support.market_csv import market_lines, write_csv

    csv = write_csv(tmp_path / "prices.csv", list(market_lines(3)))
    kaspero = build(
        Settings(csv_source_path=str(csv), etl_sources=("csv",), etl_schedule_jitter_seconds=0),
        in_memory=True,
    )
    working = kaspero.uow_factory
    outage = {"calls": 0}

    def flaky() -> InMemoryUnitOfWork:
        outage["calls"] += 1
        if outage["calls"] <= 5:
            raise ConnectionError("the database is unreachable")
        return working()  # type: ignore[return-value]

    kaspero.uow_factory = flaky
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler, args=(kaspero, stop), kwargs={"backoff": Backoff(0.01, 0.05)}
    )
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while datetime.now(UTC) < deadline:
            with working() as uow:
                latest = uow.runs.latest()
            if latest is not None and latest.status is not RunStatus.RUNNING:
                break
            assert thread.is_alive()
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert outage["calls"] > 5
    assert latest is not None
    assert latest.status is RunStatus.SUCCESS
    assert not thread.is_alive()


def test_a_run_of_many_files_refreshes_statistics_once_for_all_it_wrote(tmp_path) -> None:
    from entrypoints.bootstrap import build
    from entrypoints.settings import Settings
    from tests.support.market_csv import market_lines, write_csv

    for name in ("a", "b", "c"):
        write_csv(tmp_path / f"{name}.csv", list(market_lines(4)))
    kaspero = build(Settings(csv_source_path=str(tmp_path / "*.csv")), in_memory=True)
    run = kaspero.run_etl(["csv"])
    assert run.status is RunStatus.SUCCESS
    with kaspero.uow_factory() as uow:
        analyzed = uow.maintenance._state.analyzed  # type: ignore[attr-defined]
    assert analyzed == [36]  # three files of 12 rows: one refresh, not three
