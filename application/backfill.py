"""History backfill: a job planned into windows, and windows worked through the ingest pipeline.

`plan_backfill` resolves the symbols to canonical assets and each asset to each provider's id,
cuts the range (or, with `gaps_only`, only what is missing) into windows a request each, and
queues them. `work_backfill` is one pass of a worker: a run of trigger `backfill` with a
pipeline per provider and interval that has windows waiting; its reader takes windows one at a
time from the shared queue (`FOR UPDATE SKIP LOCKED` in PostgreSQL: any number of workers, in
any number of processes, never the same window twice), asks the provider, and yields the bars as
one batch; the window is settled once that batch is committed. Bars keep the lineage of every
source (raw payload, run, counters) and are keyed by (asset, source, time): a window worked
twice (its process was killed between the commit and the settling) stores its bars once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import attrs

from application.errors import InvalidQuery, RangeRefused, SourceUnavailable
from application.ingest import run_etl
from application.pipeline import IngestOptions, SourcePipeline
from application.ports import (
    BackfillQueue,
    Batch,
    Clock,
    CoverageReader,
    HistoryProvider,
    IngestUnits,
    Normalizer,
    SourceLocks,
)
from domain.assets import RESOLUTION, Asset, CrossReference, Interval
from domain.backfill import (
    BackfillRequest,
    HistoryTarget,
    PlannedWindow,
    WindowState,
    history_source,
    plan_windows,
)
from domain.coverage import gaps_between
from domain.records import RawRecord, Source, SourceType, UnifiedRecord
from domain.runs import EtlRun, RunTrigger

MAX_SYMBOLS = 500
MAX_WINDOWS = 200_000  # one job; a ten-year daily backfill of 500 assets from three providers is ~15,000
MAX_ATTEMPTS = 3  # a window failing this often (an outage, a broken answer) is settled `failed`


def plan_backfill(
    request: BackfillRequest,
    providers: Mapping[str, HistoryProvider],
    queue: BackfillQueue,
    coverage: CoverageReader,
    uow_factory: IngestUnits,
    crossref: Sequence[CrossReference],
    clock: Clock,
) -> int:
    """Queue a backfill job; return its id. What cannot be planned (an unknown symbol, an asset
    a provider has no id for, a range before the plan's reach) is kept as the job's problems,
    one line each, and the rest is planned."""
    _check(request, providers)
    now = clock()
    problems: list[str] = []
    targets = _targets(request, providers, uow_factory, crossref, problems)
    planned: list[PlannedWindow] = []
    for target in targets:
        provider = providers[target.kind]
        since = request.since
        reach, setting = provider.reach()
        if reach is not None and since < now - reach:
            earliest = now - reach
            if request.until <= earliest:
                problems.append(
                    f"{target.kind} {target.symbol}: nothing asked: the whole range is older than the "
                    f"plan reaches ({reach.days} days back; {setting})"
                )
                continue
            problems.append(
                f"{target.kind} {target.symbol}: history before {earliest:%Y-%m-%d} not asked: the plan "
                f"reaches {reach.days} days back ({setting})"
            )
            since = earliest
        wanted = [(since, request.until)]
        if request.gaps_only:
            source = history_source(target.kind, request.interval)
            last = request.until - RESOLUTION  # `until` is exclusive, coverage's end inclusive
            spans = coverage.covered(target.asset_id, request.interval, source, since, last)
            gaps = gaps_between(spans.get(source, []), request.interval.step, since, last)
            wanted = [(gap.start, gap.end) for gap in gaps]
        empty = queue.empty_ranges(target.asset_id, target.kind, request.interval)
        planned += plan_windows(target, request.interval, wanted, provider.window(request.interval), empty)
        if len(planned) > MAX_WINDOWS:
            raise InvalidQuery(
                f"this backfill would take more than {MAX_WINDOWS:,} requests: ask for fewer assets, "
                "a shorter range or a longer interval"
            )
    return queue.create(request, planned, problems, now)


def unfinished_job(queue: BackfillQueue, request: BackfillRequest, explicit: tuple[bool, bool]) -> int | None:
    """An unfinished job asking the same (symbols, providers, interval, gaps, and the range's ends
    that were given, `explicit`): running the same backfill again goes on with it."""
    for job in queue.jobs(50):
        asked = job.request
        if (
            job.finished_at is None
            and (asked.symbols, asked.kinds, asked.interval, asked.gaps_only)
            == (request.symbols, request.kinds, request.interval, request.gaps_only)
            and (not explicit[0] or asked.since == request.since)
            and (not explicit[1] or asked.until == request.until)
        ):
            return job.id
    return None


def _check(request: BackfillRequest, providers: Mapping[str, HistoryProvider]) -> None:
    if not request.symbols:
        raise InvalidQuery("name at least one symbol")
    if len(request.symbols) > MAX_SYMBOLS:
        raise InvalidQuery(f"at most {MAX_SYMBOLS} symbols a backfill")
    if request.until <= request.since:
        raise InvalidQuery("the range is empty: `until` must be after `since`")
    unknown = [kind for kind in request.kinds if kind not in providers]
    if unknown or not request.kinds:
        raise InvalidQuery(
            f"no history from {', '.join(unknown) or 'no source'}; sources with history: "
            f"{', '.join(providers) or 'none'}"
        )
    for kind in request.kinds:
        if request.interval not in providers[kind].intervals:
            offered = ", ".join(interval.value for interval in providers[kind].intervals)
            raise InvalidQuery(f"{kind} has no {request.interval.value} history (it has {offered})")


def _targets(
    request: BackfillRequest,
    providers: Mapping[str, HistoryProvider],
    uow_factory: IngestUnits,
    crossref: Sequence[CrossReference],
    problems: list[str],
) -> list[HistoryTarget]:
    curated = {entry.symbol: entry.ids for entry in crossref}
    targets: list[HistoryTarget] = []
    with uow_factory() as uow:
        assets = uow.assets.with_symbols(sorted(set(request.symbols)))
        by_symbol: dict[str, list[Asset]] = {}
        for asset in assets:
            by_symbol.setdefault(asset.symbol, []).append(asset)
        for symbol in dict.fromkeys(request.symbols):
            found = by_symbol.get(symbol, [])
            if not found:
                problems.append(
                    f"{symbol}: no asset has this symbol yet (a provider's snapshot or a file brings it)"
                )
                continue
            for asset in found:
                # how each source names the asset: the curated list, its snapshot sources' aliases
                names = {
                    **curated.get(symbol, {}),
                    **{
                        alias.source: alias.source_asset_id
                        for alias in uow.assets.aliases_of(asset.id)
                        if ":" not in alias.source
                    },
                }
                for kind in request.kinds:
                    provider_id = providers[kind].provider_id(asset.symbol, names)
                    if provider_id is None:
                        problems.append(
                            f"{kind} {symbol}: no {kind} id is known for asset {asset.id} (a {kind} snapshot "
                            "run, or its column in the cross-reference file, gives it)"
                        )
                        continue
                    targets.append(HistoryTarget(asset.id, asset.symbol, kind, provider_id))
    return targets


def work_backfill(
    providers: Mapping[str, HistoryProvider],
    queue: BackfillQueue,
    uow_factory: IngestUnits,
    clock: Clock,
    options: IngestOptions,
    locks: SourceLocks | None = None,
    max_windows: int | None = None,
    waiting: Sequence[tuple[str, Interval, int]] | None = None,
) -> EtlRun | None:
    """One pass over the waiting windows of these providers (`waiting`: as `queue.pending()`
    answered, asked here when not given): a run of trigger `backfill` that takes windows until
    none is left (or `max_windows` were taken, or a stop is asked); None when nothing waits."""
    waiting = [item for item in (queue.pending() if waiting is None else waiting) if item[0] in providers]
    if not waiting:
        return None
    taken = _Taken(max_windows)
    pipelines = []
    for kind, interval, count in waiting:
        assets: dict[str, int] = {}
        reader = WindowReader(providers[kind], interval, queue, clock, assets, count, taken)
        pipelines.append(SourcePipeline(reader, KnownAssetNormalizer(providers[kind].normalizer, assets)))
    return run_etl(pipelines, uow_factory, clock, RunTrigger.BACKFILL, options, locks)


@attrs.define
class _Taken:
    """Windows taken by one pass, across its providers."""

    limit: int | None
    count: int = 0

    def more(self) -> bool:
        return self.limit is None or self.count < self.limit


class WindowReader:
    """A provider's history at one interval, as the windows of the queue: one batch a window."""

    def __init__(
        self,
        provider: HistoryProvider,
        interval: Interval,
        queue: BackfillQueue,
        clock: Clock,
        assets: dict[str, int],
        waiting: int,
        taken: _Taken,
    ) -> None:
        self.source = Source(name=history_source(provider.kind, interval), source_type=SourceType.API)
        self._provider = provider
        self._interval = interval
        self._queue = queue
        self._clock = clock
        self._assets = assets
        self._waiting = max(waiting, 1)
        self._taken = taken

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        done = 0
        while self._taken.more():
            window = self._queue.claim(self._provider.kind, self._interval, run_id)
            if window is None:
                return
            self._taken.count += 1
            done += 1
            if window.attempts > MAX_ATTEMPTS:
                # taken again and again without settling: its batch fails each time (the runs of
                # its source say why); it stops here instead of failing every pass
                self._queue.settle(
                    window.id, WindowState.FAILED, 0, 0,
                    f"taken {window.attempts - 1} times without its bars being stored (see the errors of "
                    f"{self.source.name}'s runs)", self._clock(),
                )  # fmt: skip
                continue
            try:
                page = self._provider.fetch(window, run_id)
            except RangeRefused as ex:
                self._queue.settle(window.id, WindowState.REFUSED, 0, 1, str(ex), self._clock())
                continue
            except SourceUnavailable as ex:
                self._queue.release(window.id, str(ex), MAX_ATTEMPTS, self._clock())
                raise
            self._assets[window.provider_id] = window.asset_id
            state = WindowState.DONE if page.raws else WindowState.EMPTY
            settle = partial(self._settle, window.id, state, len(page.raws), page.counters.http_requests)
            yield Batch(
                raws=page.raws,
                cursor=None,  # the queue is the checkpoint: a window is settled once committed
                counters=page.counters,
                responses=page.responses,
                position=(min(done, self._waiting), self._waiting),
                rewrite=True,  # a bar whose record is stored may have lost its history row (a gap)
                committed=settle,
                refused=partial(self._refuse, window.id, page.counters.http_requests),
            )

    def _settle(self, window_id: int, state: WindowState, bars: int, requests: int) -> None:
        self._queue.settle(window_id, state, bars, requests, None, self._clock())

    def _refuse(self, window_id: int, requests: int, reason: str) -> None:
        """The window's prices are far off what the other sources hold (another coin behind the
        provider's id?): refused with the figures, nothing of it stored."""
        self._queue.settle(window_id, WindowState.REFUSED, 0, requests, reason, self._clock())


@attrs.frozen
class KnownAssetNormalizer:
    """A provider's history normalizer, with each bar given the asset its window was for (a
    record's id is `<provider id>@<moment>`): no resolution by symbol or name is needed."""

    inner: Normalizer
    assets: Mapping[str, int]

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        record = self.inner.normalize(raw)
        provider_id = raw.source_record_id.rpartition("@")[0]
        return attrs.evolve(record, asset_id=self.assets.get(provider_id))
