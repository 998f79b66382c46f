"""Health per source kind: a kind is healthy only when its newest run succeeded and is not stale.

`/health` and the dashboard's headline say `healthy` only when every enabled source kind is;
anything else is `degraded`, with the kinds and the reasons. A kind's sources are the ones its
newest finished run read (a CSV glob's files, a list of feeds), so a file taken out of the glob
stops counting once a run no longer reads it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from domain.runs import RunStatus

# a run may start a little late (jitter, a long previous run) before its kind counts as stale
STALE_GRACE = timedelta(minutes=1)


class Health(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@attrs.frozen
class SourceRunState:
    """A source's newest finished run (`running` ones are left out: they have not said yet)."""

    source: str
    run_id: int
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    error: str | None = None


@attrs.frozen
class KindHealth:
    kind: str
    status: Health
    last_run_id: int | None
    last_status: RunStatus | None
    last_finished_at: datetime | None
    age_seconds: float | None
    schedule_seconds: float | None
    stale: bool
    reasons: tuple[str, ...]
    sources: tuple[SourceRunState, ...]


@attrs.frozen
class ReplicaState:
    """A standby as `/health` shows it: where it is (no credentials), whether it answered, and
    how far behind the primary its data is."""

    name: str
    reachable: bool
    lag_seconds: float | None = None
    error: str | None = None


def replica_reasons(replicas: Sequence[ReplicaState], max_lag_seconds: float) -> list[str]:
    """Why the read replicas make health degraded: one that cannot be reached (its reads go to
    the primary), one that accepts writes, one further behind than `max_lag_seconds`."""
    reasons = []
    for replica in replicas:
        if replica.error is not None:
            reasons.append(f"replica {replica.name}: {replica.error}")
        elif replica.lag_seconds is not None and replica.lag_seconds > max_lag_seconds:
            reasons.append(
                f"replica {replica.name}: {replica.lag_seconds:.0f} s behind the primary "
                f"(more than REPLICA_MAX_LAG_SECONDS, {max_lag_seconds:g})"
            )
    return reasons


def kind_of(source: str) -> str:
    """`csv:prices` → `csv`; `coingecko` → `coingecko`."""
    return source.partition(":")[0]


def stale_after(schedule: timedelta) -> timedelta:
    """Two intervals and a minute: one late run is tolerated, two missed ones are not."""
    return 2 * schedule + STALE_GRACE


def judge_kind(
    kind: str, schedule: timedelta | None, states: Sequence[SourceRunState], now: datetime
) -> KindHealth:
    """The health of one enabled source kind from its sources' newest finished runs."""
    own = [state for state in states if kind_of(state.source) == kind]
    if not own:
        return KindHealth(
            kind, Health.DEGRADED, None, None, None, None,
            schedule.total_seconds() if schedule else None, False, ("never run",), (),
        )  # fmt: skip
    last_run = max(state.run_id for state in own)
    members = tuple(sorted((state for state in own if state.run_id == last_run), key=lambda s: s.source))
    reasons = [
        f"{state.source} {state.status.value}" + (f": {state.error}" if state.error else "")
        for state in members
        if state.status is not RunStatus.SUCCESS
    ]
    finished = max(state.finished_at or state.started_at for state in members)
    age = (now - finished).total_seconds()
    stale = schedule is not None and now - finished > stale_after(schedule)
    if stale:
        assert schedule is not None
        reasons.append(
            f"stale: last run finished {_duration(age)} ago, runs every {_duration(schedule.total_seconds())}"
        )
    statuses = {state.status for state in members}
    last_status = next(
        (status for status in (RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.SKIPPED) if status in statuses),
        RunStatus.SUCCESS,
    )
    return KindHealth(
        kind=kind,
        status=Health.DEGRADED if reasons else Health.HEALTHY,
        last_run_id=last_run,
        last_status=last_status,
        last_finished_at=finished,
        age_seconds=age,
        schedule_seconds=schedule.total_seconds() if schedule else None,
        stale=stale,
        reasons=tuple(reasons),
        sources=members,
    )


def judge(
    schedules: Mapping[str, timedelta | None], states: Sequence[SourceRunState], now: datetime
) -> tuple[Health, tuple[KindHealth, ...]]:
    """Every enabled kind judged; healthy only when each of them is."""
    kinds = tuple(judge_kind(kind, schedule, states, now) for kind, schedule in schedules.items())
    healthy = all(kind.status is Health.HEALTHY for kind in kinds)
    return (Health.HEALTHY if healthy else Health.DEGRADED), kinds


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
