"""The scheduler process: due sources every interval, queued API requests, graceful stop.

Any number of replicas may run: each source kind runs under a PostgreSQL advisory lock and a
shared schedule mark, so it runs once per interval across all of them. SIGTERM or SIGINT stops
the process after the batch in flight commits; the run is recorded as failed with
"interrupted", and the next run resumes from the checkpoint.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from datetime import timedelta

import structlog

from application.errors import InvalidQuery, StoreUnavailable
from application.scheduling import close_abandoned_requests, run_due_sources, run_requested, turn
from domain.runs import EtlRun, RunTrigger
from entrypoints.bootstrap import Kaspero
from entrypoints.healthcheck import GRACE_SECONDS, Heartbeat, heartbeat_path

logger = structlog.get_logger("kaspero.scheduler")

MAX_POLL_SECONDS = 5.0
BACKFILL_WINDOWS_PER_CYCLE = 20
KEEP_HISTORY = "history:keep"  # the schedulers' turn to plan HISTORY_KEEP_* backfills


def scheduled_kinds(kaspero: Kaspero) -> dict[str, timedelta]:
    kinds = kaspero.enabled_kinds()
    return {kind: timedelta(minutes=kaspero.settings.schedule_minutes(kind)) for kind in dict.fromkeys(kinds)}


def run_scheduler(
    kaspero: Kaspero, stop: threading.Event, wait_first: bool = False, backoff: Backoff | None = None
) -> None:
    """Loop until `stop` is set: queued requests first, then whatever is due, then a short nap.

    A cycle that fails (the database unreachable, a connection lost mid-run) is logged and
    tried again after a bounded, jittered pause: the process outlives faults outside it."""
    intervals = scheduled_kinds(kaspero)
    shortest = min(intervals.values()).total_seconds()
    poll = min(MAX_POLL_SECONDS, max(0.2, shortest / 4))
    jitter = kaspero.settings.etl_schedule_jitter_seconds
    jitter = min(30.0, shortest / 10) if jitter is None else jitter
    logger.info(
        "scheduler_started", kinds={k: v.total_seconds() for k, v in intervals.items()}, jitter=jitter
    )

    heartbeat = Heartbeat(heartbeat_path(kaspero.settings), max(shortest, GRACE_SECONDS) + GRACE_SECONDS)

    def should_stop() -> bool:
        heartbeat.working()  # asked between batches: a long run is a cycle going on
        return stop.is_set()

    def replay(source: str | None, reason: str | None) -> EtlRun:
        run = kaspero.replay_quarantine(source, reason)
        logger.info("replay_finished", run_id=run.id, source=source, status=run.status.value, error=run.error)
        return run

    def run_kinds(kinds: Sequence[str], trigger: RunTrigger) -> EtlRun:
        run = kaspero.run_etl(list(kinds), trigger, should_stop=should_stop)
        logger.info(
            "run_finished", run_id=run.id, trigger=trigger.value, status=run.status.value, error=run.error
        )
        return run

    if wait_first:
        with kaspero.uow_factory() as uow:  # the caller just ran every source: the schedule starts now
            for kind in intervals:
                uow.schedule.mark_started(kind, kaspero.clock())
            uow.commit()
    backoff = backoff or Backoff()
    request_grace = timedelta(seconds=kaspero.settings.run_abandon_grace_seconds)
    while not stop.is_set():
        try:
            close_abandoned_requests(kaspero.uow_factory, kaspero.locks, kaspero.clock, request_grace)
            while not stop.is_set() and run_requested(
                list(intervals), kaspero.locks, kaspero.uow_factory, kaspero.clock, run_kinds, replay=replay
            ):
                pass
            if stop.wait(random.uniform(0, jitter)):  # spreads replicas' attempts
                break
            run_due_sources(
                intervals, kaspero.locks, kaspero.uow_factory, kaspero.clock, run_kinds, stop.is_set
            )
            keep = timedelta(minutes=kaspero.settings.history_keep_minutes)
            if kaspero.settings.history_keep_symbols and not stop.is_set():
                with turn(KEEP_HISTORY, keep, kaspero.locks, kaspero.uow_factory, kaspero.clock) as due:
                    if due:
                        try:
                            logger.info("history_keep_planned", jobs=kaspero.keep_history())
                        except InvalidQuery as ex:  # the settings ask what no source has: said once a turn
                            logger.error("history_keep_refused", error=f"HISTORY_KEEP_*: {ex}")
            if not stop.is_set():
                # queued backfill windows, a few a cycle: due sources are never kept waiting long
                run = kaspero.work_backfill(should_stop, max_windows=BACKFILL_WINDOWS_PER_CYCLE)
                if run is not None:
                    logger.info(
                        "backfill_pass_finished", run_id=run.id, status=run.status.value, error=run.error
                    )
        except Exception as ex:  # no fault ends the process; the database gone is one line, any
            # other fault (ours) is logged with its traceback
            heartbeat.cycle_failed()
            delay = backoff.next()
            log = logger.error if isinstance(ex, StoreUnavailable) else logger.exception
            log("scheduler_cycle_failed", error=f"{type(ex).__name__}: {ex}", retry_in_s=round(delay, 1))
            stop.wait(delay)
            continue
        heartbeat.cycle_succeeded()
        backoff.reset()
        stop.wait(poll)
    logger.info("scheduler_stopped")


class Backoff:
    """Exponential, jittered, bounded waits between failed cycles: 1 s, 2 s, 4 s … up to a minute."""

    def __init__(self, first: float = 1.0, most: float = 60.0) -> None:
        self._first, self._most, self._failures = first, most, 0

    def next(self) -> float:
        ceiling = min(self._most, self._first * 2**self._failures)
        self._failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._failures = 0
