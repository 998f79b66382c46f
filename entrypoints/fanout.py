"""CSV files of one run loaded in parallel processes (`CSV_WORKERS`).

Python reads and normalizes a file on one core; a glob of ten files on a machine of several
cores loads them several at a time, each in a worker process of its own (started with `spawn`:
a forked copy of a process holding a connection pool and threads is not safe). Each file is still
its own source with its own checkpoint, run by the same `ingest_source` as in line, on the
worker's own connection pool; the worker's observer events travel back over a queue to the
parent's observer (the live display, the progress log), and the parent's graceful stop reaches
the workers through an event: each stops after its batch in flight commits.

A worker ignores SIGINT and SIGTERM (the parent decides when to stop, and tells it) and stops on
its own, after its batch in flight, if the parent disappears.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import structlog

from application.batches import ingest_source
from application.errors import InjectedFailure, Interrupted
from application.pipeline import RunTotals, SourcePipeline
from application.ports import EtlObserver, SourceOutcome
from domain.runs import RunStatus
from entrypoints.logs import configure_logging, log_format_for
from entrypoints.settings import Settings

RELAY_SECONDS = 0.2  # how often the parent passes on the workers' events and its stop

logger = structlog.get_logger("kaspero.fanout")


class ProcessFanOut:
    """`SourceFanOut` over a pool of `workers` spawned processes, for CSV files."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        workers: int,
        files: Mapping[str, Path],
        full_refresh: bool = False,
        build: Callable[[Settings, str], Any] | None = None,
    ) -> None:
        # how a worker wires its own Kaspero: `entrypoints.bootstrap.build`, handed in by the
        # composition root (a module-level function, so it travels to a spawned process by name)
        if build is None:
            raise ValueError("a fan-out needs the composition root's build")
        self._build = build
        self._settings = settings
        self._database_url = database_url
        self._workers = workers
        self._files = files  # the CSV files it can take, by source name (the run picks among them)
        self._full_refresh = full_refresh

    def takes(self, source: str) -> bool:
        return self._workers > 1 and source in self._files

    def run(
        self, sources: Sequence[str], run_id: int, should_stop: Callable[[], bool], observer: EtlObserver
    ) -> list[SourceOutcome]:
        context = multiprocessing.get_context("spawn")
        events: multiprocessing.Queue[tuple[str, tuple[Any, ...]]] = context.Queue()
        stop = context.Event()
        outcomes: dict[str, SourceOutcome] = {}
        with ProcessPoolExecutor(
            max_workers=min(self._workers, len(sources)),
            mp_context=context,
            initializer=_start_worker,
            initargs=(events, stop, os.getpid(), self._settings, self._database_url, self._build),
        ) as pool:
            futures: dict[Future[SourceOutcome], str] = {
                pool.submit(_run_source, self._files[source], run_id, self._full_refresh): source
                for source in sources
            }
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=RELAY_SECONDS)
                _relay(events, observer)
                if should_stop():
                    stop.set()
            _relay(events, observer)
            for future, source in futures.items():
                outcomes[source] = _outcome_of(future, source)
        events.close()
        return [outcomes[source] for source in sources]


def _outcome_of(future: Future[SourceOutcome], source: str) -> SourceOutcome:
    try:
        return future.result()
    except BrokenProcessPool:
        return SourceOutcome(
            source, RunStatus.FAILED, f"{source}: the worker process loading it died (killed or out of memory)",
            lost=True,
        )  # fmt: skip
    except Exception as ex:  # a fault the worker could not even report: say so, never lose the run
        logger.error(
            "csv_worker_failed", source=source, error=f"{type(ex).__name__}: {ex}",
            traceback="".join(traceback.format_exception(ex)),
        )  # fmt: skip
        return SourceOutcome(source, RunStatus.FAILED, f"{source}: {type(ex).__name__}: {ex}", lost=True)


def _relay(events: multiprocessing.Queue[tuple[str, tuple[Any, ...]]], observer: EtlObserver) -> None:
    while True:
        try:
            method, args = events.get_nowait()
        except queue.Empty:
            return
        getattr(observer, method)(*args)


class _RelayObserver:
    """A worker's observer: every event goes to the parent, which tells its own observer."""

    def __init__(self, events: multiprocessing.Queue[tuple[str, tuple[Any, ...]]]) -> None:
        self._events = events

    def __getattr__(self, method: str) -> Callable[..., None]:
        if method not in (
            "drift_found", "batch_committed", "progress", "history_dropped", "source_errored", "source_finished",
        ):  # fmt: skip
            raise AttributeError(method)
        return lambda *args: self._events.put((method, args))


# the worker process's own state, set once by `_start_worker`
_worker: dict[str, Any] = {}


def _start_worker(
    events: multiprocessing.Queue[tuple[str, tuple[Any, ...]]],
    stop: Event,
    parent: int,
    settings: Settings,
    database_url: str,
    build: Callable[[Settings, str], Any],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(settings.log_level, log_format_for(settings.log_format))
    kaspero = build(settings, database_url)
    kaspero.observer = _RelayObserver(events)
    _worker.update(kaspero=kaspero, stop=stop, parent=parent)
    threading.Thread(target=_die_with, args=(parent,), name="kaspero-orphan-watch", daemon=True).start()


def _die_with(parent: int, every: float = 0.25) -> None:
    """End this worker within `every` seconds of its parent's death (a SIGKILLed `etl run`
    cannot stop its workers; re-parented, they would load on for minutes). Mid-batch is safe:
    a batch commits whole or not at all, and the rerun loads each row once."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(70)


def _stopping() -> bool:
    return bool(_worker["stop"].is_set() or os.getppid() != _worker["parent"])


def _run_source(path: Path, run_id: int, full_refresh: bool) -> SourceOutcome:
    """One file, as its own source, exactly as `ingest_source` loads it in line."""
    kaspero = _worker["kaspero"]
    [source] = kaspero.csv_sources([path], full_refresh)
    pipeline = SourcePipeline(reader=source, normalizer=source)
    totals = RunTotals()
    options = kaspero.ingest_options(should_stop=_stopping)
    try:
        status, error = ingest_source(
            pipeline, run_id, kaspero.uow_factory, kaspero.clock, options, None, totals
        )
    except (InjectedFailure, Interrupted) as ex:
        return SourceOutcome(pipeline.name, RunStatus.FAILED, str(ex), totals.written, stopped=True)
    return SourceOutcome(pipeline.name, status, error, totals.written)
