"""Scheduling: run each due source kind once across every scheduler replica, and queued requests.

A source kind is run under a database-wide lock; inside it, the schedule mark says whether
another replica already ran it this interval. Requests queued through the API are claimed with
SKIP LOCKED, so each runs once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta

from application.errors import NotFound
from application.ports import Clock, SchedulingUnits, SourceLocks
from application.recovery import close_where_no_one_holds
from domain.runs import EtlRun, RunTrigger

RunKinds = Callable[[Sequence[str], RunTrigger], EtlRun]
# a replay of the quarantine: of one source (None: every enabled one), of the entries whose reason
# holds a text (None: every entry); raises NotFound for a source that is not enabled
Replay = Callable[[str | None, str | None], EtlRun]


def lock_name(kind: str) -> str:
    return f"kaspero:source:{kind}"


def run_due_sources(
    intervals: Mapping[str, timedelta],
    locks: SourceLocks,
    uow_factory: SchedulingUnits,
    clock: Clock,
    run_kinds: RunKinds,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[EtlRun]:
    """Run every kind whose interval has passed since any replica last started it."""
    runs = []
    for kind, interval in intervals.items():
        if should_stop():
            break
        with turn(kind, interval, locks, uow_factory, clock) as due:
            if due:
                runs.append(run_kinds([kind], RunTrigger.SCHEDULE))
    return runs


@contextmanager
def turn(
    name: str, interval: timedelta, locks: SourceLocks, uow_factory: SchedulingUnits, clock: Clock
) -> Iterator[bool]:
    """Whether `name`'s turn has come (its interval passed since any replica last took it): when
    it has, this replica takes it and holds it for the block, so no other replica does the same
    work at the same time, however long it takes."""
    with locks.hold(lock_name(name)) as acquired:
        if not acquired:
            yield False  # another replica is at it now
            return
        with uow_factory() as uow:
            last = uow.schedule.last_started(name)
            now = clock()
            if last is not None and now - last < interval:
                due = False
            else:
                uow.schedule.mark_started(name, now)
                uow.commit()
                due = True
        yield due


def run_requested(
    all_kinds: Sequence[str],
    locks: SourceLocks,
    uow_factory: SchedulingUnits,
    clock: Clock,
    run_kinds: RunKinds,
    wait_for_lock: float = 600.0,
    replay: Replay | None = None,
) -> EtlRun | None:
    """Claim the oldest queued request and run it, waiting for its sources' locks; None if none
    queued. A replay holds the lock of its source's kind (every kind's without a source), so it
    never reads a source's quarantine while that source loads."""
    with uow_factory() as uow:
        request = uow.requests.claim_next(clock())
        uow.commit()
    if request is None:
        return None
    if request.replay:
        source = request.sources[0] if request.sources else None
        kinds = sorted({source.partition(":")[0]} if source else set(all_kinds))
        action: Callable[[], EtlRun] = (
            (lambda: replay(source, request.replay_reason)) if replay is not None else _no_replay
        )
    else:
        kinds = list(request.sources or all_kinds)
        action = lambda: run_kinds(kinds, RunTrigger.MANUAL)  # noqa: E731
    run, refused = None, None
    try:
        # held while it runs: a scheduler that finds the lock free knows this one died
        with locks.hold(request_lock_name(request.id)):
            try:
                run = _with_locks(kinds, locks, action, wait_for_lock)
            except NotFound as ex:  # a replay of a source no longer enabled: the request says so
                refused = str(ex)
    finally:
        # closed even when the run could not finish (a database outage), never left `running`
        with uow_factory() as uow:
            if refused is not None:
                uow.requests.fail(request.id, refused, clock())
            else:
                uow.requests.complete(request.id, run.id if run else None, clock())
            uow.commit()
    return run


def _no_replay() -> EtlRun:
    raise NotFound("this scheduler cannot replay the quarantine")


def request_lock_name(request_id: int) -> str:
    return f"kaspero:request:{request_id}"


ABANDONED_REQUEST = (
    "the scheduler running it stopped (killed or lost) before it finished; ask again with POST /runs"
)


def close_abandoned_requests(
    uow_factory: SchedulingUnits, locks: SourceLocks, clock: Clock, grace: timedelta = timedelta(minutes=1)
) -> list[int]:
    """Close `failed` every request still `running` whose lock nobody holds: its scheduler is
    gone. Requests claimed within `grace` are left alone (the lock is taken just after the claim)."""
    with uow_factory() as uow:
        candidates = uow.requests.running_since_before(clock() - grace)

    def close(request_id: int) -> None:
        with uow_factory() as uow:
            uow.requests.fail(request_id, ABANDONED_REQUEST, clock())
            uow.commit()

    return close_where_no_one_holds(candidates, request_lock_name, close, locks)


def _with_locks(
    kinds: Sequence[str], locks: SourceLocks, action: Callable[[], EtlRun], wait_for_lock: float
) -> EtlRun | None:
    if not kinds:
        return action()
    deadline = time.monotonic() + wait_for_lock
    while True:
        with locks.hold(lock_name(kinds[0])) as acquired:
            if acquired:
                return _with_locks(kinds[1:], locks, action, max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)
