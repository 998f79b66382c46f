"""ETL runs: what was attempted, when, and what it did per source."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"  # a source with nothing to read (a CSV glob matching no file); never a run's


class RunTrigger(enum.StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    CLI = "cli"
    REPLAY = "replay"  # quarantined records read again through the current rules
    BACKFILL = "backfill"  # history windows from the providers (`kaspero backfill`, POST /backfills)


@attrs.frozen
class SourceCounters:
    """What one batch (or a whole run, once summed) did for one source."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    http_requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    duration_ms: int = 0
    drift_findings: int = 0
    # bars stored marked `suspect`: far off the other sources' prices for their time
    suspect_bars: int = 0

    def __add__(self, other: SourceCounters) -> SourceCounters:
        return SourceCounters(
            **{
                field.name: getattr(self, field.name) + getattr(other, field.name)
                for field in attrs.fields(SourceCounters)
            }
        )


@attrs.frozen
class SourceRun:
    """One source's share of a run."""

    source: str
    counters: SourceCounters
    status: RunStatus
    error: str | None = None
    freshness_seconds: float | None = None


@attrs.frozen
class EtlRun:
    id: int
    trigger: RunTrigger
    started_at: datetime
    status: RunStatus
    finished_at: datetime | None = None
    error: str | None = None
    sources: tuple[SourceRun, ...] = ()


@attrs.frozen
class SourceStats:
    """A source's history over every run: what it processed, when it last worked and failed."""

    source: str
    runs: int
    totals: SourceCounters
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    average_duration_ms: float | None
    last_duration_ms: int | None = None
    runs_by_status: dict[str, int] = attrs.field(factory=dict)


# a source that quarantines this share of what it read, or more, has failed whatever it loaded
FAILED_SHARE = 0.5


def overall_status(statuses: list[RunStatus]) -> RunStatus:
    """A run succeeds if every source did, fails if none did, and is partial in between.

    Skipped sources do not count, but a run whose every source was skipped did nothing and is
    `partial`, not a silent success."""
    if statuses and all(status is RunStatus.SKIPPED for status in statuses):
        return RunStatus.PARTIAL
    statuses = [status for status in statuses if status is not RunStatus.SKIPPED]
    if not statuses or all(status is RunStatus.SUCCESS for status in statuses):
        return RunStatus.SUCCESS
    if all(status is RunStatus.FAILED for status in statuses):
        return RunStatus.FAILED
    return RunStatus.PARTIAL
