"""The ports the use cases need. Adapters satisfy them structurally.

They take and return domain types or builtins, never rows, responses or pydantic models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import attrs

from application.queries import DataQuery, Page, QuarantineQuery
from domain.assets import Alias, Asset, Candle, HistoryQuery, Interval, SourceQuote
from domain.backfill import BackfillJob, BackfillRequest, PlannedWindow, Window, WindowState
from domain.bars import UsdRate
from domain.checkpoints import Checkpoint
from domain.comparison import DataDelta, PriceQuote
from domain.coverage import Span
from domain.drift import DriftFinding, DriftKind, StoredDrift
from domain.health import ReplicaState, SourceRunState
from domain.mentions import KnownAsset
from domain.plausibility import BarRanges, Reference
from domain.records import (
    QuarantinedRecord,
    RawRecord,
    Source,
    StoredQuarantine,
    StoredRecord,
    UnifiedRecord,
)
from domain.requests import RunRequest
from domain.runs import EtlRun, RunStatus, RunTrigger, SourceCounters, SourceStats

Clock = Callable[[], datetime]


class TextColumn(Protocol):
    """A column of text values, None where there is none: a columnar engine's array (a store
    may write it as it is) or anything that lists its values."""

    def __len__(self) -> int: ...

    def to_pylist(self) -> list[str | None]: ...


@attrs.frozen
class BarColumns:
    """A block's market records as columns (the columnar path): each of the unified record's
    fields a column of text, None where it has no value (numbers as exact decimals, moments as
    ISO 8601 with their offset, `extra` as a JSON object), with the lines they were read from.
    Fields no column names are None in every record."""

    source: str
    count: int
    records: Mapping[str, TextColumn]
    lines: Sequence[str]  # each record's line of the file as read (without its line break)
    offsets: Sequence[int]  # where in the file each line starts (bytes)
    fetched_at: datetime


class BarBlock(Protocol):
    """A batch of a file's bars its reader read and normalized as columns: every row read
    cleanly, each record id once. The batch asks it only what its rules need (the record ids,
    the assets' names, the ranges plausibility judges); `columns` are what the store writes.
    `raws` is the same batch as the row path reads it: what this path does not decide (a record
    already stored, a figure out of bounds, prices other sources know) goes that way, to the
    same result."""

    def __len__(self) -> int: ...

    def keys(self) -> Sequence[str]:
        """The records' ids, in the file's order."""
        ...

    def names(self) -> Mapping[str, str | None]:
        """Each symbol's asset name (the last row's), as assets are resolved."""
        ...

    def ranges(self) -> BarRanges: ...

    @property
    def bar_seconds(self) -> int | None:
        """Its bars' length (None: not known)."""
        ...

    def bars(self) -> Sequence[tuple[str, datetime]]:
        """Each record's symbol and observed moment, in the file's order."""
        ...

    def raws(self) -> tuple[RawRecord, ...]: ...

    def columns(self, asset_ids: Mapping[str, int]) -> BarColumns:
        """The records, each with the id of its symbol's canonical asset."""
        ...


@attrs.frozen
class Batch:
    """One unit of work read from a source: raw records and the cursor reached after them.

    `rejected` holds records the reader could not even split into fields (an undecodable line,
    a row with too many cells); they are quarantined with the reason, like normalizer failures.
    """

    raws: tuple[RawRecord, ...]
    cursor: dict[str, Any] | None  # None: no position in the source (a replay): no checkpoint saved
    rejected: tuple[QuarantinedRecord, ...] = ()
    counters: SourceCounters = attrs.Factory(SourceCounters)
    responses: Mapping[str, int] = attrs.Factory(dict)  # provider answers by HTTP status ("error": none)
    findings: tuple[DriftFinding, ...] = ()  # drift the reader found itself (a file's renamed column)
    position: tuple[int, int] | None = None  # how much of its input is read: (done, total), e.g. bytes
    # every record written again even where its stored version came from the same payload: what
    # was derived from it may be gone (a backfill repairing history the retention dropped)
    rewrite: bool = False
    # called once the batch is committed (on the writing thread): a backfill window settles here
    committed: Callable[[], None] | None = attrs.field(default=None, eq=False)
    # called with the reason when the batch's prices are refused whole (far off what the other
    # sources hold): a backfill window is settled `refused` and the source goes on; without it
    # the refusal fails the source (a file is refused whole)
    refused: Callable[[str], None] | None = attrs.field(default=None, eq=False)
    # the batch read as columns (a file's clean bars): then `raws` is empty
    block: BarBlock | None = attrs.field(default=None, eq=False)


class SourceReader(Protocol):
    """Reads one source in batches, resuming from the cursor of its last checkpoint."""

    source: Source

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]: ...


@runtime_checkable
class QuotedSource(Protocol):
    """A source whose prices may be quoted in another asset (a price file): whether this one's
    are in USD terms, so it needs no other source's prices to be converted."""

    def quoted_in_usd(self) -> bool: ...


class Normalizer(Protocol):
    """Turns a source's raw record into a unified record, or raises `InvalidRecord`."""

    def normalize(self, raw: RawRecord) -> UnifiedRecord: ...


@attrs.frozen
class LoadCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0


@attrs.frozen
class PreparedRows:
    """A batch's rows made ready by a store (in whatever form it writes fastest); only that
    store's `write_prepared` reads `content`: the application never sees the form."""

    source: str | None
    content: object


@attrs.frozen
class StoredRaws:
    """What storing a batch's raw payloads learnt, as the store keeps it (the new rows' ids): the
    receipt `prepare_rows` asks for, so raw payloads are stored before anything made of them."""

    run_id: int
    content: object = None


class BatchWrites(Protocol):
    """What the ETL writes and asks of the store for a source's batches (`application.batches`).

    A batch is written in three calls: `store_raws` (its raw payloads, committed first),
    `prepare_rows` with the receipt it gave (no I/O beyond it: the ETL prepares a batch while
    the store writes the one before) and `write_prepared`, on any unit of work of the same store."""

    def known_assets(self, max_rank: int) -> list[KnownAsset]:
        """Symbols and names of market records: every CSV asset and each provider's top ranks."""
        ...

    def current_checksums(self, source: str, record_ids: Sequence[str]) -> dict[str, str]:
        """The checksum of the payload each stored record was made from."""
        ...

    def observe_unchanged(self, run_id: int, source: str, record_ids: Sequence[str]) -> datetime | None:
        """Note that this run saw these stored records unchanged; return their newest timestamp."""
        ...

    def prune_observations(self, source: str, keep_runs: int) -> None:
        """Keep only the observations of the source's `keep_runs` newest runs."""
        ...

    def latest_payloads(self, source: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The raw payload each record's stored version was made from (for drift evidence)."""
        ...

    def store_raws(self, run_id: int, raws: Sequence[RawRecord]) -> StoredRaws:
        """Raw payloads, each stored once (one already stored, `RawRecord.stored_as`, is not
        stored again); the receipt `prepare_rows` takes."""
        ...

    def prepare_rows(
        self, stored: StoredRaws, records: Sequence[UnifiedRecord], quarantined: Sequence[QuarantinedRecord]
    ) -> PreparedRows:
        """Normalized and quarantined rows made from the stored raw payloads, made ready for
        `write_prepared` in the receipt's run."""
        ...

    def write_prepared(self, run_id: int, prepared: PreparedRows) -> LoadCounts:
        """Upsert the unified rows (and their history), quarantine the rest; `records` hold at
        most one record per source_record_id."""
        ...


class BlockWrites(Protocol):
    """How a batch read as columns is written (`application.batches`): its raw lines first
    (`store_block_raws`, committed before anything made of them), then its records prepared
    with the receipt, then `BatchWrites.write_prepared` as any batch."""

    def store_block_raws(self, run_id: int, block: BarColumns) -> StoredRaws: ...

    def prepare_block(self, stored: StoredRaws, block: BarColumns) -> PreparedRows: ...


class RunObservations(Protocol):
    """What comparing runs asks of the store (`application.comparison`): the observations each
    run of a snapshot source kept."""

    def observation_delta(
        self, source: str, run_a: int, run_b: int, threshold_pct: float
    ) -> DataDelta | None:
        """Records added, vanished and moved between two runs of a snapshot source; None if either
        run's observations are not kept (not a provider's snapshot, or pruned)."""
        ...

    def quotes_as_of(self, run_id: int, max_rank: int) -> list[PriceQuote]:
        """Each snapshot source's prices as its newest run up to `run_id` observed them, top ranks only."""
        ...


class CheckpointRepository(Protocol):
    def get(self, source: str) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...

    def list(self) -> list[Checkpoint]: ...


class RunLedger(Protocol):
    """A run's lifecycle as the ETL writes it: started, counted, finished."""

    def start(self, trigger: RunTrigger, started_at: datetime) -> int: ...

    def start_source(self, run_id: int, source: str, started_at: datetime) -> None: ...

    def add_counters(self, run_id: int, source: str, counters: SourceCounters) -> None: ...

    def add_responses(self, run_id: int, source: str, responses: Mapping[str, int]) -> None: ...

    def finish_source(
        self,
        run_id: int,
        source: str,
        status: RunStatus,
        error: str | None,
        finished_at: datetime,
        duration_ms: int,
        freshness_seconds: float | None = None,
    ) -> None: ...

    def finish(self, run_id: int, status: RunStatus, error: str | None, finished_at: datetime) -> None: ...

    def get(self, run_id: int) -> EtlRun | None: ...


class RunHistory(Protocol):
    """Runs as reports read them: one, the newest, a list, each source's totals."""

    def get(self, run_id: int) -> EtlRun | None: ...

    def latest(self) -> EtlRun | None: ...

    def recent(
        self,
        limit: int,
        status: RunStatus | None = None,
        source: str | None = None,
        before: int | None = None,
    ) -> list[EtlRun]:
        """Newest first; `source` keeps runs that touched that source, `before` runs older than an id."""
        ...

    def source_stats(self) -> list[SourceStats]: ...

    def response_totals(self) -> dict[tuple[str, str], int]:
        """Provider answers over every run, by (source, HTTP status)."""
        ...


class AbandonedRuns(Protocol):
    """Runs whose process died, as recovery finds and closes them."""

    def running_since_before(self, cutoff: datetime) -> list[int]:
        """Ids of runs still `running` that started before `cutoff`."""
        ...

    def abandon(self, run_id: int, error: str, finished_at: datetime) -> None:
        """Close a run whose process is gone: it and its running sources become `failed`."""
        ...


class RunRepository(RunLedger, RunHistory, AbandonedRuns, Protocol):
    """Every side of the runs: what a store implements (each use case is given one side)."""


class DriftRepository(Protocol):
    def record(self, source: str, run_id: int, findings: Sequence[DriftFinding], seen_at: datetime) -> None:
        """Keep each finding once per (source, kind, field, candidate): first/last seen and a count."""
        ...

    def recent(
        self,
        source: str | None = None,
        kind: DriftKind | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredDrift]:
        """Newest `last_seen` first."""
        ...


class RunRequestRepository(Protocol):
    def add(
        self,
        sources: Sequence[str],
        requested_at: datetime,
        replay: bool = False,
        replay_reason: str | None = None,
    ) -> RunRequest: ...

    def claim_next(self, claimed_at: datetime) -> RunRequest | None:
        """The oldest queued request, now `running`; none if the queue is empty or all are claimed."""
        ...

    def complete(self, request_id: int, run_id: int | None, finished_at: datetime) -> None: ...

    def get(self, request_id: int) -> RunRequest | None: ...

    def running_since_before(self, cutoff: datetime) -> list[int]:
        """Requests claimed before `cutoff` and still running."""

    def fail(self, request_id: int, error: str, finished_at: datetime) -> None:
        """Close a running request `failed` with the reason (a request already closed stays)."""


class ScheduleRepository(Protocol):
    def last_started(self, kind: str) -> datetime | None: ...

    def mark_started(self, kind: str, started_at: datetime) -> None: ...


class AssetResolution(Protocol):
    """Canonical assets as loading and planning meet them: found by alias or symbol, created,
    linked."""

    def aliases(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The canonical asset of each known (source, source asset id)."""
        ...

    def with_symbols(self, symbols: Sequence[str]) -> list[Asset]:
        """The assets of these symbols, read for creating what is missing: until the unit of work
        ends, no other one reads them for the same purpose, so two loads that meet a new coin at
        once make one asset of it, never two."""
        ...

    def aliases_of(self, asset_id: int) -> list[Alias]: ...

    def ranks(self, asset_ids: Sequence[int]) -> dict[int, int]:
        """The best rank any source gives each asset, as evidence for resolution."""
        ...

    def create(self, assets: Sequence[Asset]) -> list[int]:
        """Store new assets (their `id` is ignored); return their ids, in order."""
        ...

    def link(self, aliases: Sequence[Alias]) -> None: ...


class AssetCatalog(Protocol):
    """Canonical assets as the API and the dashboard browse them."""

    def find(self, symbol: str | None, search: str | None, page: int, page_size: int) -> Page[Asset]: ...

    def get(self, asset_id: int) -> Asset | None: ...

    def aliases_of(self, asset_id: int) -> list[Alias]: ...

    def latest_quotes(self, asset_id: int) -> list[SourceQuote]:
        """Each source's latest price of the asset."""
        ...

    def history(self, asset_ids: Sequence[int], query: HistoryQuery) -> list[Candle]:
        """The assets' candles in (bucket, asset, series) order, at most `query.limit` of them."""
        ...


class AssetRepository(AssetResolution, AssetCatalog, Protocol):
    """Both sides of the assets: what a store implements."""


class UsdRateRepository(Protocol):
    """What the sources observed of assets' USD prices: for conversions and for checking a file
    against what is already known."""

    def usd_rates(
        self, symbol: str, bars: Sequence[tuple[datetime, int]]
    ) -> dict[tuple[datetime, int], UsdRate]:
        """For each bar (its start and length in seconds), the median of the sources' last USD
        prices of the asset `symbol` within it (never one outlier); bars with none are left out."""
        ...

    def other_sources(self, asset_ids: Sequence[int], source: str) -> dict[int, tuple[str, ...]]:
        """The sources other than `source` that hold USD prices of each asset (assets with none
        are left out)."""
        ...

    def reference_prices(
        self, bars: Sequence[tuple[int, datetime, int]], sources: Mapping[int, Sequence[str]]
    ) -> dict[tuple[int, datetime, int], Reference]:
        """For each bar (asset, start, seconds), the median of the last USD price each of the
        asset's `sources` observed within it; bars none observed are left out."""
        ...


class Maintenance(Protocol):
    """What a run asks of the store once its sources are done: how the store does it is its own."""

    def refresh_after_load(self, rows_written: int) -> bool:
        """Let the store take stock of a load of `rows_written` rows (its reads may otherwise
        choose badly until it does); return whether it did anything."""
        ...

    def drop_history_before(self, cutoff: datetime) -> int:
        """Drop the price history observed before `cutoff` (a store whose bars are their records,
        as PostgreSQL's, drops those records); return how many bars went."""
        ...


class Transaction(Protocol):
    """One transaction; rolled back on exit unless committed."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


# What each caller is given: one transaction over only the ports it uses (read-only members, so
# a store's unit of work, which holds every repository, is each of them).


class IngestUnit(Transaction, Protocol):
    """Loading a source's batches (application.ingest, batches, conversion, known_prices)."""

    @property
    def records(self) -> BatchWrites: ...
    @property
    def blocks(self) -> BlockWrites: ...
    @property
    def checkpoints(self) -> CheckpointRepository: ...
    @property
    def runs(self) -> RunLedger: ...
    @property
    def drifts(self) -> DriftRepository: ...
    @property
    def assets(self) -> AssetResolution: ...
    @property
    def rates(self) -> UsdRateRepository: ...
    @property
    def maintenance(self) -> Maintenance: ...


class RecoveryUnit(Transaction, Protocol):
    """Closing what dead processes left running (application.recovery)."""

    @property
    def runs(self) -> AbandonedRuns: ...
    @property
    def requests(self) -> RunRequestRepository: ...


class SchedulingUnit(Transaction, Protocol):
    """The scheduler's marks and the queue of run requests (application.scheduling)."""

    @property
    def requests(self) -> RunRequestRepository: ...
    @property
    def schedule(self) -> ScheduleRepository: ...


class QueueUnit(Transaction, Protocol):
    """Queueing run requests for the schedulers (application.requests)."""

    @property
    def requests(self) -> RunRequestRepository: ...


class ReportingUnit(Transaction, Protocol):
    """Runs, their comparison, checkpoints and drift as reports read them (application.runs,
    operations, status, comparison)."""

    @property
    def runs(self) -> RunHistory: ...
    @property
    def observations(self) -> RunObservations: ...
    @property
    def checkpoints(self) -> CheckpointRepository: ...
    @property
    def drifts(self) -> DriftRepository: ...
    @property
    def requests(self) -> RunRequestRepository: ...


class CatalogUnit(Transaction, Protocol):
    """Browsing the canonical assets and their history (application.assets' readers)."""

    @property
    def assets(self) -> AssetCatalog: ...


class PlanningUnit(Transaction, Protocol):
    """Planning a backfill: the assets asked for and their providers' ids (application.backfill)."""

    @property
    def assets(self) -> AssetResolution: ...


class UnitOfWork(
    IngestUnit, RecoveryUnit, SchedulingUnit, ReportingUnit, CatalogUnit, PlanningUnit, Protocol
):
    """Every repository in one transaction: what a store implements and the composition root
    hands out; a use case names the narrower unit it needs."""

    records: BatchWrites
    blocks: BlockWrites
    observations: RunObservations
    checkpoints: CheckpointRepository
    runs: RunRepository
    drifts: DriftRepository
    requests: RunRequestRepository
    schedule: ScheduleRepository
    assets: AssetRepository
    rates: UsdRateRepository
    maintenance: Maintenance


UnitOfWorkFactory = Callable[[], UnitOfWork]
IngestUnits = Callable[[], IngestUnit]
RecoveryUnits = Callable[[], RecoveryUnit]
SchedulingUnits = Callable[[], SchedulingUnit]
QueueUnits = Callable[[], QueueUnit]
ReportingUnits = Callable[[], ReportingUnit]
CatalogUnits = Callable[[], CatalogUnit]
PlanningUnits = Callable[[], PlanningUnit]


class SourceLocks(Protocol):
    """Locks shared by every process on the database, so one source kind runs once at a time."""

    def hold(self, name: str) -> AbstractContextManager[bool]:
        """Try to take the lock; the context yields whether it was taken and releases it after."""
        ...


class RecordReader(Protocol):
    """The read side behind `/data`."""

    def find(self, query: DataQuery) -> Page[StoredRecord]: ...

    def get(self, record_id: int) -> StoredRecord | None: ...


class RecordExporter(Protocol):
    """The read side behind exports: a batch of records at a time in the query's order, from its
    `after` key (keyset), with no totals and no page-size limit of the API's pages."""

    def export_batch(self, query: DataQuery, limit: int) -> Sequence[StoredRecord]: ...


class Records(RecordReader, RecordExporter, Protocol):
    """Both read sides of the records, as `/data` uses them (pages, and files by export)."""


class Tables(Protocol):
    """Results as CSV text in the columns `application.tables` declares, a chunk at a time:
    what DataFrames are read from, with no object per row on the way."""

    def history_csv(self, asset_ids: Sequence[int], query: HistoryQuery) -> Iterator[bytes]:
        """HISTORY_TABLE's columns: every candle of the assets over the query's range (no limit),
        in (bucket, asset, series) order."""
        ...

    def records_csv(self, query: DataQuery) -> Iterator[bytes]:
        """RECORD_TABLE's columns: every record matching the query's filters, by id."""
        ...


class CoverageReader(Protocol):
    """Which buckets of an asset's history hold data, per source."""

    def covered(
        self,
        asset_id: int,
        interval: Interval,
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, list[Span]]:
        """Per source, the runs of consecutive buckets of `interval` holding data (a bar longer
        than a bucket covers each bucket it spans), oldest first, within `[start, end]`'s buckets."""
        ...


@attrs.frozen
class RenderedHistory:
    """A history page as the API's JSON array of candles (bytes), and where the next page starts."""

    candles_json: bytes
    next_start: datetime | None


class HistoryRenderer(Protocol):
    """A fast path for history pages: the store renders the candles of a page as JSON itself."""

    def page_json(self, asset_ids: Sequence[int], query: HistoryQuery) -> RenderedHistory | None:
        """The first `query.limit` candles in (bucket, asset, series) order, whole buckets, as
        `render.candle` would write them; None when the first bucket alone holds more than a
        page (the caller pages it by `application.assets.asset_history`)."""
        ...


class QuarantineBacklog(Protocol):
    """Quarantined records to read again (`kaspero quarantine replay`)."""

    def replayable(
        self, source: str, reason: str | None, after_id: int, limit: int
    ) -> list[tuple[int, RawRecord]]:
        """The source's quarantined entries after id `after_id` (by id, `limit` at most) whose
        reason holds `reason` (any case), each as the raw record it was: its payload, checksum
        and fetch time. An entry whose record a later run stored (a newer version) is left out:
        reading it again would put older data over newer."""
        ...


class QuarantineReader(Protocol):
    """The read side behind `/quarantine`."""

    def find(self, query: QuarantineQuery) -> Page[StoredQuarantine]: ...


class QuarantineExporter(Protocol):
    """Quarantined entries for exports: a batch at a time, newest first, from the query's
    `after_id` (entries older than it), with no count and no page-size limit."""

    def export_batch(self, query: QuarantineQuery, limit: int) -> Sequence[StoredQuarantine]: ...


class QuarantineRecords(QuarantineReader, QuarantineExporter, Protocol):
    """Both read sides of the quarantine, as `/quarantine` uses them."""


class SourceRunLedger(Protocol):
    """What health needs of the run history: each source's newest finished run."""

    def latest_finished(self) -> list[SourceRunState]: ...


class ReplicaMonitor(Protocol):
    """The read replicas as health shows them: reachable, how far behind."""

    def replicas(self) -> list[ReplicaState]: ...


class HealthProbe(Protocol):
    def database_reachable(self) -> bool: ...

    def pending_migrations(self) -> list[str]:
        """Migrations known to the code but not applied to the database."""
        ...


@attrs.frozen
class Progress:
    """How far one source's run has come, after a committed batch (cumulative)."""

    records: int  # read so far (loaded or quarantined)
    quarantined: int
    requests: int  # HTTP requests made (pages, for the API sources)
    elapsed_seconds: float
    done: float | None = None  # the share of the input read (a file's bytes), when known

    @property
    def rate(self) -> float:
        return self.records / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        if not self.done or self.done >= 1 or self.elapsed_seconds <= 0:
            return None
        return self.elapsed_seconds * (1 - self.done) / self.done


class EtlObserver(Protocol):
    """Told what the ETL does, for logs, metrics and progress displays; must not raise."""

    def drift_found(self, source: str, run_id: int, finding: DriftFinding) -> None: ...

    def batch_committed(self, source: str, run_id: int, counters: SourceCounters) -> None: ...

    def progress(self, source: str, run_id: int, update: Progress) -> None: ...

    def history_dropped(self, bars: int, cutoff: datetime) -> None: ...

    def source_finished(self, source: str, run_id: int, status: RunStatus, error: str | None) -> None: ...

    def source_errored(self, source: str, run_id: int, error: str, trace: str) -> None:
        """A source failed of an error nobody foresaw (not a provider's or a file's fault)."""


class NullObserver:
    def drift_found(self, source: str, run_id: int, finding: DriftFinding) -> None:
        return None

    def batch_committed(self, source: str, run_id: int, counters: SourceCounters) -> None:
        return None

    def progress(self, source: str, run_id: int, update: Progress) -> None:
        return None

    def history_dropped(self, bars: int, cutoff: datetime) -> None:
        return None

    def source_errored(self, source: str, run_id: int, error: str, trace: str) -> None:
        return None

    def source_finished(self, source: str, run_id: int, status: RunStatus, error: str | None) -> None:
        return None


@attrs.frozen
class SourceOutcome:
    """How one source's part of a run ended, wherever it ran."""

    source: str
    status: RunStatus
    error: str | None = None
    written: int = 0  # rows inserted or updated
    stopped: bool = False  # interrupted (a graceful stop or an injected failure): the run stops too
    lost: bool = False  # the process running it died before it could say how it ended


class SourceFanOut(Protocol):
    """Runs several whole sources of a run at once, elsewhere (processes of their own). Each
    source is read, checkpointed and committed batch by batch exactly as in line; what they tell
    the observer arrives at `observer` here."""

    def takes(self, source: str) -> bool:
        """Whether this source can run elsewhere (a CSV file can; an API source stays in line)."""
        ...

    def run(
        self, sources: Sequence[str], run_id: int, should_stop: Callable[[], bool], observer: EtlObserver
    ) -> list[SourceOutcome]: ...


@attrs.frozen
class HistoryPage:
    """One window's answer: a raw record per bar, and what asking cost."""

    raws: tuple[RawRecord, ...]
    counters: SourceCounters = attrs.Factory(SourceCounters)
    responses: Mapping[str, int] = attrs.Factory(dict)


class HistoryProvider(Protocol):
    """A provider's history of one asset at one interval, a window at a time.

    `fetch` raises `RangeRefused` when the provider will not give the window (a plan's limit,
    an unknown pair) and `SourceUnavailable` when it cannot be reached or keeps failing."""

    kind: str
    intervals: tuple[Interval, ...]
    normalizer: Normalizer

    def window(self, interval: Interval) -> timedelta:
        """How much history one request answers at `interval`."""
        ...

    def reach(self) -> tuple[timedelta | None, str]:
        """How far back the configured plan reaches (None: no limit), and the setting saying so."""
        ...

    def provider_id(self, symbol: str, names: Mapping[str, str]) -> str | None:
        """How the provider names the asset, given how each source names it (`names`: source
        kind → id, from its aliases and the cross-reference); None when it cannot tell."""
        ...

    def fetch(self, window: Window, run_id: int) -> HistoryPage: ...


class ConfirmedEmpty(Protocol):
    """What the providers confirmed empty of an asset's history (a backfill window answered with
    nothing), read by coverage and by backfill planning."""

    def empty_ranges(self, asset_id: int, kind: str, interval: Interval) -> list[Span]:
        """What the provider confirmed empty for this asset and interval, oldest first."""
        ...


class BackfillQueue(ConfirmedEmpty, Protocol):
    """Backfill jobs and their windows, shared by every process: a window is taken by one
    worker at a time (`claim`) and settled once its bars are committed."""

    def create(
        self,
        request: BackfillRequest,
        windows: Sequence[PlannedWindow],
        problems: Sequence[str],
        now: datetime,
    ) -> int: ...

    def claim(self, kind: str, interval: Interval, run_id: int) -> Window | None:
        """The next pending window of this provider and interval (or one whose run died), now
        this run's; None when there is none."""
        ...

    def settle(
        self, window_id: int, state: WindowState, bars: int, requests: int, error: str | None, now: datetime
    ) -> None: ...

    def release(self, window_id: int, error: str, max_attempts: int, now: datetime) -> None:
        """Back to pending after a failure, or `failed` once it has failed `max_attempts` times."""
        ...

    def pending(self) -> list[tuple[str, Interval, int]]:
        """The providers and intervals that have windows waiting, with how many."""
        ...

    def job(self, job_id: int) -> BackfillJob | None: ...

    def jobs(self, limit: int) -> list[BackfillJob]: ...
