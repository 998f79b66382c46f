"""Recovery of work whose process died: runs and queued requests still `running` whose lock no
process holds are closed `failed`, with the reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from application.ports import Clock, RecoveryUnits, SourceLocks

ABANDONED_RUN = "interrupted: the process running it stopped (killed or lost)"


def close_where_no_one_holds(
    candidates: Sequence[int], lock_of: Callable[[int], str], close: Callable[[int], None], locks: SourceLocks
) -> list[int]:
    """Close each candidate whose lock is free (its process is gone); a held lock means alive.
    The lock is held while closing, so the owner cannot come back in between."""
    closed = []
    for candidate in candidates:
        with locks.hold(lock_of(candidate)) as free:
            if not free:
                continue  # still alive elsewhere
            close(candidate)
            closed.append(candidate)
    return closed


def run_lock_name(run_id: int) -> str:
    return f"kaspero:run:{run_id}"


def close_abandoned_runs(
    uow_factory: RecoveryUnits, locks: SourceLocks, clock: Clock, grace: timedelta = timedelta(minutes=1)
) -> list[int]:
    """Mark `failed` every run still `running` whose lock nobody holds: its process is gone.

    Runs younger than `grace` are left alone (a run takes its lock just after it is recorded).
    """
    with uow_factory() as uow:
        candidates = uow.runs.running_since_before(clock() - grace)

    def close(run_id: int) -> None:
        with uow_factory() as uow:
            uow.runs.abandon(run_id, ABANDONED_RUN, clock())
            uow.commit()

    return close_where_no_one_holds(candidates, run_lock_name, close, locks)
