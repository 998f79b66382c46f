"""What the ETL tells the outside world: structured log lines, and progress while it works.

`LoggingObserver` logs drift, each source's end, and an INFO `progress` event every few
seconds per source (running totals, rows/s, share read, time left): what a process without a
terminal shows. `TerminalProgress` draws the same as a live display per source on a terminal.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import attrs
import structlog

from application.ports import Progress
from domain.drift import DriftFinding
from domain.runs import RunStatus, SourceCounters

logger = structlog.get_logger("kaspero.etl")

PROGRESS_EVERY_SECONDS = 5.0


class LoggingObserver:
    def __init__(self, every_seconds: float = PROGRESS_EVERY_SECONDS) -> None:
        self._every = every_seconds
        self._last: dict[str, float] = {}
        self._guard = threading.Lock()

    def drift_found(self, source: str, run_id: int, finding: DriftFinding) -> None:
        logger.warning(
            "schema_drift",
            source=source,
            run_id=run_id,
            kind=finding.kind.value,
            field=finding.field,
            candidate=finding.candidate or None,
            confidence=finding.confidence,
            auto_mapped=finding.auto_mapped,
        )

    def batch_committed(self, source: str, run_id: int, counters: SourceCounters) -> None:
        logger.debug("batch_committed", source=source, run_id=run_id, **attrs.asdict(counters))

    def progress(self, source: str, run_id: int, update: Progress) -> None:
        now = time.monotonic()
        with self._guard:
            last = self._last.setdefault(source, now)
            if now - last < self._every:
                return
            self._last[source] = now
        logger.info("progress", source=source, run_id=run_id, **progress_fields(update))

    def history_dropped(self, bars: int, cutoff: datetime) -> None:
        logger.info("history_dropped", bars=bars, before=cutoff.isoformat(), reason="HISTORY_RETENTION_DAYS")

    def source_errored(self, source: str, run_id: int, error: str, trace: str) -> None:
        logger.error("source_error", source=source, run_id=run_id, error=error, traceback=trace)

    def source_finished(self, source: str, run_id: int, status: RunStatus, error: str | None) -> None:
        with self._guard:
            self._last.pop(source, None)
        log = logger.info if status is RunStatus.SUCCESS else logger.warning
        log("source_finished", source=source, run_id=run_id, status=status.value, error=error)


def progress_fields(update: Progress) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "records": update.records,
        "quarantined": update.quarantined,
        "rows_per_s": round(update.rate),
        "elapsed_s": round(update.elapsed_seconds, 1),
    }
    if update.requests:
        fields["requests"] = update.requests
    if update.done is not None:
        fields["done_pct"] = round(update.done * 100, 1)
    if update.seconds_left is not None:
        fields["seconds_left"] = round(update.seconds_left)
    return fields


class TerminalProgress(LoggingObserver):
    """A live display per source on the terminal (rich): records read, rows/s, the share of the
    file read and the time left, pages fetched for the API sources. Warnings still go to the log.
    Use it as a context manager around the run."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars

        self._bars = Bars(
            TextColumn("[bold]{task.description:<30}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[share]:>6}"),
            TextColumn("{task.fields[records]:>12} records"),
            TextColumn("{task.fields[rate]:>8} rows/s"),
            TextColumn("{task.fields[pages]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> TerminalProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def progress(self, source: str, run_id: int, update: Progress) -> None:
        known = update.done is not None
        self._bars.update(
            self._task(source),
            total=1.0 if known else None,  # a file: its bytes; an API: no end known in advance
            completed=update.done if known else 0,
            share=f"{(update.done or 0) * 100:.1f}%" if known else "",
            records=f"{update.records:,}",
            rate=f"{update.rate:,.0f}",
            pages=f"{update.requests} pages" if update.requests else "",
        )

    def source_finished(self, source: str, run_id: int, status: RunStatus, error: str | None) -> None:
        task = self._task(source)
        self._bars.update(task, description=f"{source}: {status.value}", total=1.0, completed=1.0)
        self._bars.stop_task(task)
        if status is not RunStatus.SUCCESS:
            super().source_finished(source, run_id, status, error)

    def _task(self, source: str) -> Any:
        with self._lock:
            if source not in self._tasks:
                self._tasks[source] = self._bars.add_task(
                    source, total=None, share="", records="0", rate="", pages=""
                )
            return self._tasks[source]
