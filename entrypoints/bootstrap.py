"""The composition root: settings in, ready-to-call use cases and closable resources out.

The only production module that imports concrete adapters. Nothing is built at import time.

    from entrypoints.bootstrap import build
    app = build(database_url="postgresql://...")
    app.ingest("csv")
"""

from __future__ import annotations

import functools
import glob
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, closing, contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import attrs
import httpx
import pydantic
from dependency_injector import containers, providers
from psycopg_pool import ConnectionPool

from adapters.feeds.crossref import load_crossref
from adapters.feeds.csv_file import CsvContext, CsvFileSource, NoCsvFiles
from adapters.feeds.csv_options_file import CsvOptionsError, load_csv_options
from adapters.feeds.rss import FeedparserRssReader, RssArticleNormalizer, refuse_cross_host_redirect
from adapters.http_source import binance, coingecko, coinpaprika
from adapters.http_source.coingecko import (
    CoinGeckoHistory,
    CoinGeckoNormalizer,
    CoinGeckoPaging,
    HttpxCoinGeckoReader,
)
from adapters.http_source.coinpaprika import CoinPaprikaHistory, CoinPaprikaNormalizer, HttpxCoinPaprikaReader
from adapters.http_source.rate_limit import RateGate, TokenBucket
from adapters.http_source.transport import ProviderClient, RetryPolicy
from adapters.memory.assets import InMemoryCoverage
from adapters.memory.backfill import InMemoryBackfillQueue
from adapters.memory.reader import (
    InMemoryHealthProbe,
    InMemoryQuarantineReader,
    InMemoryRecordReader,
    InMemorySourceRunLedger,
)
from adapters.memory.scheduling import InMemorySourceLocks
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from adapters.memory.tables import InMemoryTables
from adapters.postgres.admin import check_reachable, create_database
from adapters.postgres.backfill import PostgresBackfillQueue
from adapters.postgres.budget import PostgresRateBudget
from adapters.postgres.coverage import PostgresCoverage
from adapters.postgres.embedded import EmbeddedPostgres
from adapters.postgres.health import PostgresHealthProbe, PostgresSourceRunLedger
from adapters.postgres.history_json import PostgresRenderedHistory
from adapters.postgres.migrations import apply_migrations, migration_ids
from adapters.postgres.pooling import SUSPICION, WATCHDOG, Lender
from adapters.postgres.pooling import configure as configure_connection
from adapters.postgres.quarantine import PostgresQuarantineReader
from adapters.postgres.reader import PostgresRecordReader
from adapters.postgres.replicas import ReadRouter, ReplicaProbe, replica_name
from adapters.postgres.scheduling import PostgresSourceLocks
from adapters.postgres.tables import PostgresTables
from adapters.postgres.uow import PostgresUnitOfWork
from application.assets import history_assets
from application.backfill import plan_backfill, unfinished_job, work_backfill
from application.errors import InvalidQuery, NotFound
from application.ingest import run_etl
from application.pipeline import IngestOptions, SourcePipeline
from application.ports import (
    BackfillQueue,
    Clock,
    CoverageReader,
    EtlObserver,
    HealthProbe,
    HistoryProvider,
    HistoryRenderer,
    QuarantineBacklog,
    QuarantineRecords,
    Records,
    ReplicaMonitor,
    SourceLocks,
    SourceRunLedger,
    Tables,
    UnitOfWorkFactory,
)
from application.queries import DataQuery
from application.recovery import close_abandoned_runs
from application.replay import replay_quarantine
from application.tables import HISTORY_TABLE, RECORD_TABLE, history_table, records_table
from domain.assets import HistoryQuery, Interval, names_to_symbols
from domain.backfill import BackfillRequest
from domain.bars import FileInspection
from domain.pairs import UsdQuotes
from domain.plausibility import Bounds
from domain.records import RecordKind
from domain.runs import EtlRun, RunTrigger
from entrypoints.fanout import ProcessFanOut
from entrypoints.frames import arrow_table, as_frame, moment, with_symbols
from entrypoints.observers import LoggingObserver
from entrypoints.settings import Settings, SettingsError
from entrypoints.version import kaspero_version

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
EMBEDDED_DATABASE = "kaspero"


def utc_now() -> datetime:
    return datetime.now(UTC)


def pool_resource(
    database_url: str, max_size: int, timeout: float = 30.0, statement_timeout_ms: int | None = None
) -> Iterator[ConnectionPool]:
    """A connection pool, opened on first use (after gunicorn's fork) and closed at shutdown."""
    pool = open_pool(database_url, max_size, timeout, statement_timeout_ms)
    try:
        yield pool
    finally:
        pool.close()


def open_pool(
    database_url: str, max_size: int, timeout: float = 30.0, statement_timeout_ms: int | None = None
) -> ConnectionPool:
    """A connection pool, open (its connections made in the background).

    While the database was lately seen failing, each connection is checked as it is lent (one
    broken by a restart is discarded, not handed out); a borrower waits at most `timeout` for
    one; every statement on it is cancelled after `statement_timeout_ms` when given (the API's)."""
    # a server that stops answering is seen as down: a bounded connect, and TCP keepalives on a
    # network connection (libpq ignores them on a unix socket, where the watchdog does the job)
    kwargs: dict[str, object] = {
        "application_name": "kaspero", "connect_timeout": 5,
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    }  # fmt: skip
    if statement_timeout_ms:
        kwargs["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return ConnectionPool(
        database_url,
        min_size=1,
        max_size=max_size,
        open=True,
        name="kaspero",
        kwargs=kwargs,
        configure=configure_connection,
        check=SUSPICION.check,  # connections checked as lent while the database was lately failing
        timeout=timeout,
        reconnect_timeout=0,  # keep trying to reconnect for as long as the database is away
    )


def _same(pool: Lender) -> Lender:
    return pool


def replica_pools_resource(
    settings: Settings, max_size: int, statement_timeout_ms: int | None = None
) -> Iterator[list[tuple[str, ConnectionPool]]]:
    """A pool per `DATABASE_READ_URL`, named by host, port and database (never credentials)."""
    opened: list[tuple[str, ConnectionPool]] = []
    try:
        for url in settings.database_read_urls():
            opened.append((replica_name(url), open_pool(url, max_size, 1.0, statement_timeout_ms)))
        yield opened
    finally:
        for _, pool in opened:
            pool.close()


def locks_resource(database_url: str) -> Iterator[PostgresSourceLocks]:
    """The process's advisory locks, on a session of their own (not a pooled connection)."""
    locks = PostgresSourceLocks(database_url)
    try:
        yield locks
    finally:
        locks.close()


class Container(containers.DeclarativeContainer):
    """The wiring table. Override `uow_factory`, `reader` and `probe` to swap storage."""

    settings = providers.Dependency(instance_of=Settings)
    database_url = providers.Dependency(instance_of=str)
    clock = providers.Object(utc_now)
    pool_timeout = providers.Object(30.0)
    statement_timeout_ms: providers.Object[int | None] = providers.Object(None)
    pool = providers.Resource(
        pool_resource, database_url, settings.provided.db_pool_max_size, pool_timeout, statement_timeout_ms
    )
    uow_factory = providers.Factory(PostgresUnitOfWork, pool, pool_timeout)
    # reads that need not see their own writes: the replicas' when `DATABASE_READ_URL` is set
    # and this process serves the API (see `build`), else the primary's pool
    read_pool = providers.Callable(_same, pool)
    replica_pools = providers.Resource(
        replica_pools_resource, settings, settings.provided.db_pool_max_size, statement_timeout_ms
    )
    replica_probe: providers.Provider[ReplicaMonitor | None] = providers.Object(None)
    read_uow_factory = providers.Factory(PostgresUnitOfWork, read_pool, pool_timeout)
    reader = providers.Singleton(PostgresRecordReader, read_pool)
    quarantine = providers.Singleton(PostgresQuarantineReader, read_pool)
    tables = providers.Singleton(PostgresTables, read_pool)
    backlog = providers.Singleton(PostgresQuarantineReader, pool)  # a replay reads what it writes
    coverage = providers.Singleton(PostgresCoverage, read_pool)
    backfills = providers.Singleton(PostgresBackfillQueue, pool)
    renderer: providers.Provider[HistoryRenderer | None] = providers.Singleton(
        PostgresRenderedHistory, read_pool
    )
    locks = providers.Resource(locks_resource, database_url)
    probe = providers.Singleton(PostgresHealthProbe, pool, providers.Callable(migration_ids, MIGRATIONS_DIR))
    ledger = providers.Singleton(PostgresSourceRunLedger, pool)


@attrs.define
class Kaspero:
    """The use cases, ready to call, and the resources to close after."""

    settings: Settings
    uow_factory: UnitOfWorkFactory
    # reads that need not see this process's own writes (the API's): replicas when configured
    read_uow_factory: UnitOfWorkFactory
    replicas: ReplicaMonitor | None
    renderer: HistoryRenderer | None  # history pages rendered by the store (PostgreSQL's JSON)
    coverage: CoverageReader
    backfills: BackfillQueue
    reader: Records
    quarantine: QuarantineRecords
    backlog: QuarantineBacklog
    tables: Tables
    probe: HealthProbe
    ledger: SourceRunLedger
    locks: SourceLocks
    clock: Clock
    _close: Callable[[], None]
    observer: EtlObserver = attrs.field(factory=LoggingObserver)
    database_url: str | None = None  # None in memory: nothing to share with worker processes
    # a request's time budget over every query it makes (the API's; nothing to watch in memory)
    budget: Callable[[float], AbstractContextManager[None]] = lambda _: nullcontext()
    # a provider's rate budget: the deployment's (in PostgreSQL) with a database, else this process's
    rate_gate: Callable[[str, float], RateGate] = lambda _, per_minute: TokenBucket(per_minute)

    @property
    def source_kinds(self) -> tuple[str, ...]:
        """Every registered source kind (`KINDS`)."""
        return tuple(KINDS)

    def enabled_kinds(self) -> tuple[str, ...]:
        """`ETL_SOURCES`, else every kind enabled by default."""
        return tuple(dict.fromkeys(self.settings.etl_sources or DEFAULT_KINDS))

    @contextmanager
    def pipelines(
        self, kinds: Sequence[str] | None = None, full_refresh: bool = False
    ) -> Iterator[list[SourcePipeline]]:
        """Each wanted source's pipeline, with its HTTP client closed afterwards.

        `csv` gives one source per file matching `CSV_SOURCE_PATH`.
        """
        wanted = tuple(dict.fromkeys(kinds or self.enabled_kinds()))
        check_kinds(wanted)
        with ExitStack() as stack:
            pipelines: list[SourcePipeline] = []
            for kind in wanted:
                pipelines.extend(KINDS[kind].pipelines(self, stack, full_refresh))
            yield pipelines

    @contextmanager
    def history_providers(self, kinds: Sequence[str] | None = None) -> Iterator[dict[str, HistoryProvider]]:
        """The history of each wanted kind that has one (all of them by default), clients closed after."""
        wanted = tuple(dict.fromkeys(kinds or [name for name, kind in KINDS.items() if kind.history]))
        check_kinds(wanted)
        with ExitStack() as stack:
            yield {
                kind: history(self, stack) for kind in wanted if (history := KINDS[kind].history) is not None
            }

    def provider_client(
        self, kind: str, base_url: str, per_minute: float, headers: dict[str, str] | None = None
    ) -> ProviderClient:
        """An HTTP client for a provider, taking its requests from the provider's rate budget."""
        return provider_client(self.settings, kind, base_url, self.rate_gate(kind, per_minute), headers)

    def backfill(
        self,
        symbols: Sequence[str],
        kinds: Sequence[str] | None = None,
        interval: str = "1d",
        since: datetime | None = None,
        until: datetime | None = None,
        gaps_only: bool = False,
        any_range: bool = False,
    ) -> int:
        """Queue a backfill job (`kaspero backfill`, POST /backfills); return its id: an unfinished
        job asking the same is returned instead (running it again goes on where it stopped).
        Default range: the last year up to now; default providers: the enabled kinds with history."""
        now = self.clock()
        offered = [name for name, kind in KINDS.items() if kind.history is not None]
        unknown = [kind for kind in kinds or () if kind not in offered]
        if unknown:
            raise InvalidQuery(
                f"no history from {', '.join(unknown)}; sources with history: {', '.join(offered)}"
            )
        # by default the enabled kinds that have history (ETL_SOURCES, else the default kinds)
        kinds = list(kinds or [kind for kind in self.enabled_kinds() if kind in offered])
        if not kinds:
            raise InvalidQuery(f"no enabled source has history (ETL_SOURCES); name one: {', '.join(offered)}")
        with self.history_providers(kinds) as providers:
            request = BackfillRequest(
                symbols=tuple(symbol.strip().upper() for symbol in symbols if symbol.strip()),
                kinds=tuple(kinds),
                interval=Interval(interval),
                since=since or now - timedelta(days=365),
                until=until or now,
                gaps_only=gaps_only,
            )
            # `any_range`: an unfinished job of the same assets goes on whatever its range (the
            # schedulers' keeping: a new range each turn, never a second job beside the first)
            explicit = (False, False) if any_range else (since is not None, until is not None)
            resumed = unfinished_job(self.backfills, request, explicit)
            if resumed is not None:
                return resumed
            crossref = load_crossref(self.settings.asset_crossref_path)
            return plan_backfill(
                request, providers, self.backfills, self.coverage, self.uow_factory, crossref, self.clock
            )

    def keep_history(self) -> list[int]:
        """`HISTORY_KEEP_*`: a gaps-only backfill of the chosen assets over the last
        HISTORY_KEEP_DAYS at each interval, unless one asking the same is unfinished; the jobs'
        ids (the schedulers work them)."""
        settings = self.settings
        if not settings.history_keep_symbols:
            return []
        since = self.clock() - timedelta(days=settings.history_keep_days)
        return [
            self.backfill(
                settings.history_keep_symbols,
                settings.history_keep_sources,
                interval,
                since=since,
                gaps_only=True,
                any_range=True,
            )
            for interval in settings.history_keep_intervals
        ]

    def work_backfill(
        self, should_stop: Callable[[], bool] | None = None, max_windows: int | None = None
    ) -> EtlRun | None:
        """One pass over the queued backfill windows (any job's): None when none waits."""
        # runs whose process died are closed first: their windows wait again only then
        grace = timedelta(seconds=self.settings.run_abandon_grace_seconds)
        close_abandoned_runs(self.uow_factory, self.locks, self.clock, grace)
        waiting = self.backfills.pending()
        kinds = sorted({kind for kind, _, _ in waiting if kind in KINDS and KINDS[kind].history})
        if not kinds:
            return None
        with self.history_providers(kinds) as providers:
            return work_backfill(
                providers, self.backfills, self.uow_factory, self.clock,
                self.ingest_options(should_stop=should_stop), self.locks, max_windows, waiting,
            )  # fmt: skip

    def _rss_pipelines(self, stack: ExitStack) -> list[SourcePipeline]:
        feeds = self.settings.rss_feeds()
        web = any(feed.startswith(("http://", "https://")) for feed in feeds)
        web_client = stack.enter_context(feed_client(self.settings)) if web else None
        return [
            SourcePipeline(
                FeedparserRssReader(
                    feed,
                    web_client,
                    self.clock,
                    self.settings.feed_max_mb << 20,
                    deadline_seconds=self.settings.http_deadline_seconds,
                    max_retry_after=self.settings.http_retry_after_max_seconds,
                ),
                RssArticleNormalizer(),
            )
            for feed in feeds
        ]

    def _csv_pipelines(self, full_refresh: bool = False) -> list[SourcePipeline]:
        pattern = self.settings.csv_source_path
        paths = (
            sorted(Path(path) for path in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
        )
        if not paths:
            return [SourcePipeline(reader=NoCsvFiles(pattern), normalizer=NoCsvFiles(pattern))]
        # in the glob's order: which run first, and side by side, is the run's decision (`arrange`)
        return [
            SourcePipeline(reader=source, normalizer=source)
            for source in self.csv_sources(paths, full_refresh)
        ]

    def csv_sources(self, paths: Sequence[Path], full_refresh: bool = False) -> list[CsvFileSource]:
        """Each file as a source, with its per-file options and the cross-reference."""
        try:
            options = load_csv_options(self.settings.csv_options_file())
        except CsvOptionsError as ex:
            raise SettingsError(f"CSV_OPTIONS_PATH: {ex}") from None
        crossref = load_crossref(self.settings.asset_crossref_path)
        context = CsvContext(
            names_to_symbols=names_to_symbols(crossref),
            known_symbols=frozenset(entry.symbol for entry in crossref),
            usd=UsdQuotes.of(self.settings.usd_quotes),
            auto_map_confidence=self.settings.drift_auto_map_confidence,
            max_record_bytes=self.settings.csv_max_record_bytes,
        )
        return [
            CsvFileSource(
                path,
                self.clock,
                self.settings.csv_batch_size,
                options=options.for_file(path),
                context=context,
                full_refresh=full_refresh,
                columnar=self.settings.csv_columnar,
            )
            for path in paths
        ]

    def inspect_csv(self, paths: Sequence[Path], rows: int = 5) -> list[FileInspection]:
        """`kaspero csv inspect`: each file's layout and first rows as a load would store them."""
        return [source.inspect(rows) for source in self.csv_sources(paths)]

    def run_etl(
        self,
        sources: Sequence[str] | None = None,
        trigger: RunTrigger = RunTrigger.MANUAL,
        fail_after: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        full_refresh: bool = False,
    ) -> EtlRun:
        """Run the sources now. `full_refresh` reads CSV files from their start, ignoring their
        checkpoints (the upserts keep it idempotent), so rows an older version quarantined load."""
        with self.pipelines(sources, full_refresh) as pipelines:
            options = self.ingest_options(fail_after, should_stop)
            workers = self.settings.csv_worker_count()
            # the files a worker process can load (it builds a file's source again by its path);
            # which of them do load side by side is the run's decision (`application.ingest.arrange`)
            files = {
                pipeline.name: pipeline.reader.path
                for pipeline in pipelines
                if isinstance(pipeline.reader, CsvFileSource)
            }
            if self.database_url and workers > 1 and len(files) > 1:
                fan_out = ProcessFanOut(
                    self.settings, self.database_url, workers, files, full_refresh, build=build
                )
                options = attrs.evolve(options, fan_out=fan_out)
            grace = timedelta(seconds=self.settings.run_abandon_grace_seconds)
            close_abandoned_runs(self.uow_factory, self.locks, self.clock, grace)
            return run_etl(pipelines, self.uow_factory, self.clock, trigger, options, self.locks)

    def ingest_options(
        self, fail_after: int | None = None, should_stop: Callable[[], bool] | None = None
    ) -> IngestOptions:
        """How a run ingests, from the settings (and a stop to ask after each batch)."""
        return IngestOptions(
            fail_after=fail_after if fail_after is not None else self.settings.etl_fail_after,
            fail_after_named="ETL_FAIL_AFTER",
            auto_map_confidence=self.settings.drift_auto_map_confidence,
            drift_removal_share=self.settings.drift_removal_share,
            observer=self.observer,
            should_stop=should_stop or (lambda: False),
            crossref=load_crossref(self.settings.asset_crossref_path),
            usd=UsdQuotes.of(self.settings.usd_quotes),
            bounds=Bounds(
                max_price_usd=self.settings.plausible_max_price_usd,
                min_price_usd=self.settings.plausible_min_price_usd,
                max_market_cap_usd=self.settings.plausible_max_market_cap_usd,
                max_volume_usd=self.settings.plausible_max_volume_usd,
                file_deviation=self.settings.plausible_file_deviation,
                bar_deviation=self.settings.plausible_bar_deviation,
            ),
            history_retention=(
                timedelta(days=self.settings.history_retention_days)
                if self.settings.history_retention_days
                else None
            ),
        )

    def replay_quarantine(self, source: str | None = None, reason: str | None = None) -> EtlRun:
        """Read quarantined records again through the current rules and options (the enabled
        sources', or one source's), storing those that pass: `kaspero quarantine replay`."""
        with self.pipelines() as pipelines:
            chosen = [pipeline for pipeline in pipelines if source is None or pipeline.name == source]
            if not chosen:
                names = ", ".join(pipeline.name for pipeline in pipelines) or "none"
                raise NotFound(
                    f"no enabled source is named {source!r} (enabled: {names}); a file's quarantined "
                    "rows are read again only while CSV_SOURCE_PATH names the file and ETL_SOURCES its kind"
                )
            grace = timedelta(seconds=self.settings.run_abandon_grace_seconds)
            close_abandoned_runs(self.uow_factory, self.locks, self.clock, grace)
            return replay_quarantine(
                chosen, self.backlog, self.uow_factory, self.clock, self.ingest_options(), self.locks, reason
            )

    def prices(
        self,
        *symbols: str,
        asset_ids: Sequence[int] = (),
        interval: str = "1d",
        start: str | date | datetime | None = None,
        end: str | date | datetime | None = None,
        source: str | None = None,
        frame: str = "polars",
    ) -> Any:
        """The candles of the assets (every asset of each symbol, and `asset_ids`) over a range,
        one row per bucket, asset and source (`source="consensus"`: all sources together), as a
        polars DataFrame (`frame="pandas"` or `"arrow"` for those): bucket (UTC), asset_id,
        symbol, source, open, high, low, close (exact decimals), observations."""
        assets = history_assets(self.uow_factory, tuple(asset_ids), symbols)
        query = HistoryQuery(
            Interval(interval), moment(start, "start"), moment(end, "end"), source,
            suspect=self.settings.suspect_bar_pct / 100,
        )  # fmt: skip
        if query.start and query.end and query.start > query.end:
            raise ValueError("start must not be after end")
        table = arrow_table(history_table(self.tables, assets, query), HISTORY_TABLE)
        return as_frame(with_symbols(table, assets), frame)

    def records(
        self,
        *symbols: str,
        source: Sequence[str] = (),
        kind: str | None = None,
        quote_currency: Sequence[str] = (),
        start: str | date | datetime | None = None,
        end: str | date | datetime | None = None,
        search: str | None = None,
        frame: str = "polars",
    ) -> Any:
        """The unified records matching the filters of `GET /data` (a quote of the symbols, or news
        mentioning them; `start`/`end` on published_at), by id, as a polars DataFrame (or
        `frame="pandas"`, `"arrow"`), with their lineage columns (raw_id, first/last run)."""
        query = DataQuery(
            symbol=tuple(symbols),
            source=tuple(source),
            kind=RecordKind(kind) if kind else None,
            quote_currency=tuple(value.upper() for value in quote_currency),
            start_date=moment(start, "start"),
            end_date=moment(end, "end"),
            search=search,
        )
        return as_frame(arrow_table(records_table(self.tables, query), RECORD_TABLE), frame)

    def ingest(self, source: str, trigger: RunTrigger = RunTrigger.MANUAL) -> EtlRun:
        """Run one source kind (`csv`, ...) now: the notebook's entry point."""
        return self.run_etl([source], trigger)

    def close(self) -> None:
        self._close()


def build(
    settings: Settings | None = None,
    database_url: str | None = None,
    *,
    in_memory: bool = False,
    serving: bool = False,
    embedded: bool = False,
) -> Kaspero:
    """Wire Kaspero for PostgreSQL (the given URL, or the settings' one) or in memory.

    `serving`: for the API, whose requests wait at most `API_DB_TIMEOUT_SECONDS` for a
    connection and whose statements are cancelled after `API_STATEMENT_TIMEOUT_MS`.
    Without a database URL and `DATABASE_URL`, the project's embedded server is used when it
    runs; `embedded=True` starts it if it does not (nothing is started behind your back)."""
    settings = settings or Settings.from_environ()
    check_kinds(settings.etl_sources or ())
    container = Container(settings=settings, database_url=database_url or "")
    if serving:
        container.pool_timeout.override(providers.Object(settings.api_db_timeout_seconds))
        container.statement_timeout_ms.override(providers.Object(settings.api_statement_timeout_ms))
        if settings.database_read_urls() and not in_memory:
            # the API's reads go to the hot standbys (the primary's pool when none can lend)
            container.read_pool.override(
                providers.Callable(
                    lambda replicas, primary: ReadRouter([pool for _, pool in replicas], primary),
                    container.replica_pools,
                    container.pool,
                )
            )
            container.replica_probe.override(providers.Callable(ReplicaProbe, container.replica_pools))
    else:
        container.pool_timeout.override(providers.Object(settings.db_pool_timeout_seconds))
    if in_memory:
        store = InMemoryStore()
        container.uow_factory.override(providers.Factory(InMemoryUnitOfWork, store))
        container.read_uow_factory.override(providers.Factory(InMemoryUnitOfWork, store))
        container.backlog.override(providers.Object(InMemoryQuarantineReader(store)))
        container.renderer.override(providers.Object(None))  # the fake pages in Python only
        container.coverage.override(providers.Object(InMemoryCoverage(store)))
        container.backfills.override(providers.Object(InMemoryBackfillQueue(store)))
        container.reader.override(providers.Object(InMemoryRecordReader(store)))
        container.quarantine.override(providers.Object(InMemoryQuarantineReader(store)))
        container.tables.override(providers.Object(InMemoryTables(store)))
        container.probe.override(providers.Object(InMemoryHealthProbe()))
        container.ledger.override(providers.Object(InMemorySourceRunLedger(store)))
        container.locks.override(providers.Object(InMemorySourceLocks()))
    else:
        database_url = database_url or resolve_database_url(settings, start=embedded)
        container.database_url.override(database_url)

    return Kaspero(
        settings=settings,
        uow_factory=cast(UnitOfWorkFactory, container.uow_factory),
        read_uow_factory=cast(UnitOfWorkFactory, container.read_uow_factory),
        replicas=container.replica_probe(),
        renderer=container.renderer(),
        coverage=container.coverage(),
        backfills=container.backfills(),
        reader=container.reader(),
        quarantine=container.quarantine(),
        backlog=container.backlog(),
        tables=container.tables(),
        probe=container.probe(),
        ledger=container.ledger(),
        locks=container.locks(),
        clock=container.clock(),
        close=partial(_shutdown, container),
        observer=LoggingObserver(settings.progress_log_seconds),
        database_url=None if in_memory else database_url,
        budget=(lambda _: nullcontext()) if in_memory else WATCHDOG.budget,
        rate_gate=(
            (lambda _, per_minute: TokenBucket(per_minute))
            if in_memory
            else lambda kind, per_minute: PostgresRateBudget(container.pool(), kind, per_minute)
        ),
    )


def provider_client(
    settings: Settings, kind: str, base_url: str, gate: RateGate, headers: dict[str, str] | None = None
) -> ProviderClient:
    """One `httpx.Client` per provider, with its key header (`headers`, else `Authorization`
    when a key is set), timeouts, retries and rate budget."""
    sent = {"Accept": "application/json", "User-Agent": f"kaspero/{kaspero_version()}"}
    key = settings.key_for(kind)
    if headers is not None:
        sent.update(headers)
    elif key:
        sent["Authorization"] = key
    timeout = settings.http_timeout_seconds
    client = httpx.Client(
        base_url=base_url,
        headers=sent,
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        follow_redirects=False,
        verify=tls_context(),
    )
    policy = RetryPolicy(
        attempts=settings.http_retry_attempts,
        total_seconds=settings.http_retry_max_seconds,
        max_retry_after=settings.http_retry_after_max_seconds,
    )
    return ProviderClient(
        kind,
        client,
        gate,
        policy,
        max_bytes=settings.http_max_response_mb * 1024 * 1024,
        deadline_seconds=settings.http_deadline_seconds,
    )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default (certificates verified against certifi's bundle), built once per process:
    loading the bundle costs ~40 ms, and every source has a client."""
    return httpx.create_ssl_context()


def feed_client(settings: Settings) -> httpx.Client:
    """One client for every news feed: timeouts, redirects followed within a feed's host (feeds
    move to https or another path) and refused to another host, no cookies kept."""
    timeout = settings.http_timeout_seconds
    return httpx.Client(
        headers={
            "User-Agent": f"kaspero/{kaspero_version()}",
            "Accept": "application/rss+xml, application/atom+xml, */*",
        },
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        follow_redirects=True,
        max_redirects=5,
        event_hooks={"response": [refuse_cross_host_redirect]},
        verify=tls_context(),
    )


# ---- the source kinds: each one's registration -------------------------------------------


@attrs.frozen
class SourceKind:
    """A kind of source as the composition root builds it: its pipelines for a run (one per
    file or feed, or the provider's snapshot) and, for a provider, its history. The one list of
    kinds (`KINDS`) is what settings, the command line, the API, the scheduler and the dashboard
    read; a kind's raw payloads land in `raw_<name>` (its migration creates the table)."""

    name: str
    pipelines: Callable[[Kaspero, ExitStack, bool], list[SourcePipeline]]
    history: Callable[[Kaspero, ExitStack], HistoryProvider] | None = None
    enabled_by_default: bool = True  # run when ETL_SOURCES is unset


def _coingecko_client(app: Kaspero, stack: ExitStack) -> ProviderClient:
    settings = app.settings
    key = settings.key_for("coingecko")
    headers = {}
    if key:
        pro = urlsplit(settings.coingecko_base_url).hostname or ""
        headers["x-cg-pro-api-key" if pro.startswith("pro-api.") else "x-cg-demo-api-key"] = key
    client = app.provider_client(
        "coingecko", settings.coingecko_base_url, settings.coingecko_rate_limit_per_minute, headers
    )
    return stack.enter_context(closing(client))


def _coinpaprika_client(app: Kaspero, stack: ExitStack) -> ProviderClient:
    settings = app.settings
    per_minute = settings.coinpaprika_rate_limit_per_minute or settings.rate_limit_requests_per_minute
    return stack.enter_context(
        closing(app.provider_client("coinpaprika", settings.coinpaprika_base_url, per_minute))
    )


def _coingecko(app: Kaspero, stack: ExitStack, full_refresh: bool) -> list[SourcePipeline]:
    settings = app.settings
    paging = CoinGeckoPaging(
        per_page=settings.coingecko_per_page,
        max_pages=settings.coingecko_max_pages,
        resume_window=timedelta(minutes=settings.coingecko_resume_window_minutes),
    )
    reader = HttpxCoinGeckoReader(_coingecko_client(app, stack), app.clock, paging)
    return [SourcePipeline(reader, CoinGeckoNormalizer(), coingecko.CONTRACT)]


def _coinpaprika(app: Kaspero, stack: ExitStack, full_refresh: bool) -> list[SourcePipeline]:
    reader = HttpxCoinPaprikaReader(
        _coinpaprika_client(app, stack), app.clock, max_tickers=app.settings.coinpaprika_max_tickers
    )
    return [SourcePipeline(reader, CoinPaprikaNormalizer(), coinpaprika.CONTRACT)]


def _binance_client(app: Kaspero, stack: ExitStack) -> tuple[ProviderClient, binance.BinanceOptions]:
    options = kind_options(app.settings, binance.NAME, binance.BinanceOptions)
    usd_like(app.settings, binance.NAME, options.quotes)
    client = app.provider_client(binance.NAME, options.base_url, options.rate_limit_per_minute, {})
    return stack.enter_context(closing(client)), options


def _binance(app: Kaspero, stack: ExitStack, full_refresh: bool) -> list[SourcePipeline]:
    client, options = _binance_client(app, stack)
    symbols = [entry.symbol for entry in load_crossref(app.settings.asset_crossref_path)]
    reader = binance.BinanceKlines(client, app.clock, symbols, options)
    return [SourcePipeline(reader, binance.KlineNormalizer())]


def _binance_history(app: Kaspero, stack: ExitStack) -> HistoryProvider:
    client, options = _binance_client(app, stack)
    return binance.BinanceHistory(client, app.clock, options)


KINDS: dict[str, SourceKind] = {
    kind.name: kind
    for kind in (
        SourceKind(
            "coinpaprika",
            _coinpaprika,
            lambda app, stack: CoinPaprikaHistory(
                _coinpaprika_client(app, stack), app.clock, app.settings.coinpaprika_history_days or None
            ),
        ),
        SourceKind(
            "coingecko",
            _coingecko,
            lambda app, stack: CoinGeckoHistory(
                _coingecko_client(app, stack), app.clock, app.settings.coingecko_history_days or None
            ),
        ),
        SourceKind("binance", _binance, _binance_history, enabled_by_default=False),
        SourceKind("csv", lambda app, stack, full_refresh: app._csv_pipelines(full_refresh)),
        SourceKind("rss", lambda app, stack, full_refresh: app._rss_pipelines(stack)),
    )
}
DEFAULT_KINDS = tuple(name for name, kind in KINDS.items() if kind.enabled_by_default)


M = TypeVar("M", bound=pydantic.BaseModel)


def kind_options(settings: Settings, kind: str, model: type[M]) -> M:
    """A kind's own settings (`<KIND>_<NAME>` variables) as its model, or `SettingsError` naming
    each variable that is wrong (an unknown one too: a typo must not pass for a default)."""
    try:
        return model.model_validate(settings.kind_variables(kind))
    except pydantic.ValidationError as ex:
        problems = "; ".join(
            f"{kind.upper()}_{str(error['loc'][0]).upper()}: {error['msg']}" for error in ex.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None


def usd_like(settings: Settings, kind: str, quotes: Sequence[str]) -> None:
    """Refuse quotes that are not USD-like (`USD_QUOTES`): a kind's prices are USD prices."""
    odd = [quote for quote in quotes if quote not in settings.usd_quotes]
    if odd:
        raise SettingsError(
            f"invalid configuration: {kind.upper()}_QUOTES: {', '.join(odd)} is not in USD_QUOTES "
            f"({', '.join(settings.usd_quotes)}): prices quoted in it are no USD prices"
        )


def check_kinds(kinds: Sequence[str]) -> None:
    """Refuse a source kind nobody registered, naming the ones there are."""
    missing = [kind for kind in kinds if kind not in KINDS]
    if missing:
        raise SettingsError(f"unknown source {', '.join(missing)}; known: {', '.join(KINDS)}")


def _shutdown(container: Container) -> None:
    container.shutdown_resources()


class NoDatabase(SettingsError):
    """No `DATABASE_URL` and no embedded server running, and this command does not start one."""


def resolve_database_url(settings: Settings, start: bool = False) -> str:
    """`DATABASE_URL` when set; otherwise the embedded server of this project when it runs (a
    `make run` in another terminal), started here only when `start` (`kaspero run`, `kaspero
    db start`, `build(embedded=True)`); otherwise `NoDatabase` saying how to get one."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    embedded = EmbeddedPostgres(settings.data_dir)
    if not start and not embedded.is_running():
        raise NoDatabase(
            "no database: set DATABASE_URL to a PostgreSQL server (postgresql://user:password@host:5432/db), "
            f"or start the embedded one with `kaspero db start` (or `make run`); its data would live in {embedded.data_dir}"
        )
    server_url = embedded.start()
    return create_database(server_url, EMBEDDED_DATABASE)


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.data_dir)


def migrate(database_url: str) -> list[str]:
    return apply_migrations(database_url, MIGRATIONS_DIR)


def check_database(url: str) -> None:
    """Raise `StoreUnavailable` with the server's own reason if the database cannot be used."""
    check_reachable(url)
