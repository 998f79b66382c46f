"""Thin resources: parse the query, call one use case, render."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import falcon
import structlog
from orjson import Fragment

from application.assets import (
    asset_coverage,
    asset_history,
    asset_view,
    export_history,
    find_assets,
    history_assets,
    rendered_history,
)
from application.browse import (
    EXPORT_BATCH,
    export_quarantined,
    export_records,
    find_quarantined,
    find_records,
    get_record,
)
from application.comparison import anomalies, compare
from application.operations import list_checkpoints, list_drift_findings, source_stats
from application.ports import (
    BackfillQueue,
    Clock,
    ConfirmedEmpty,
    CoverageReader,
    HealthProbe,
    HistoryRenderer,
    QuarantineRecords,
    RecordExporter,
    RecordReader,
    UnitOfWorkFactory,
)
from application.requests import request_replay, request_run
from application.runs import get_run, get_run_request, list_runs
from application.status import Health, HealthReport, check_readiness
from domain.assets import Interval
from domain.drift import DriftKind
from domain.runs import RunStatus
from entrypoints.api import declared, render
from entrypoints.api.auth import ApiKeyGuard, require_key
from entrypoints.api.declared import FileFormat
from entrypoints.api.errors import InvalidParameter
from entrypoints.api.params import (
    DATA_PARAMETERS,
    HISTORY_PARAMETERS,
    HISTORY_RANGE_PARAMETERS,
    QUARANTINE_PARAMETERS,
    QueryParams,
    asset_ids,
    data_query,
    encode_cursor,
    encode_id_cursor,
    file_format,
    history_query,
    list_page,
    moment_of,
    quarantine_query,
)
from entrypoints.exports import ACCEPTED, MEDIA_TYPES, QUARANTINED, RECORDS, Shape, candle_shape, chunks

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The request's body, whatever its transfer encoding, at most `limit` bytes (413 past it).

    A chunked body has no Content-Length, and falcon's bounded stream reads such a body as
    empty: it is read from the server's own stream (gunicorn decodes the chunks), with the same
    cap, so neither the checks nor the cap can be stepped around by chunking."""
    too_large = falcon.HTTPContentTooLarge(
        title="Body too large", description=f"the body may hold at most {limit:,} bytes"
    )
    if req.content_length is not None and req.content_length > limit:
        raise too_large
    chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    stream = req.stream if chunked and req.content_length is None else req.bounded_stream
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise too_large
    return data


def bounded_json(req: falcon.Request) -> object:
    """A small JSON body, read within bounds: at most 64 KiB (413 past it) and 16 levels deep
    (400 past it); no body at all is `{}` (blanks alone are no JSON document: 400)."""
    data = read_body(req, MAX_BODY_BYTES)
    if not data:
        return {}
    if _nesting(data) > MAX_JSON_DEPTH:
        raise InvalidParameter("body", f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidParameter("body", "the body is not valid JSON") from None


def _nesting(data: bytes) -> int:
    """How deep brackets nest, outside strings (counted before parsing, so no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def export_format(req: falcon.Request, given: FileFormat | None) -> str:
    """`format` when given, else a file format the `Accept` header names without naming JSON."""
    if given is not None:
        return given.value
    accepted = {part.split(";")[0].strip().lower() for part in (req.accept or "").split(",")}
    if "application/json" in accepted:
        return "json"
    return next((ACCEPTED[media] for media in sorted(accepted) if media in ACCEPTED), "json")


class Streamer:
    """A list endpoint's export: every match as one file streamed in batches. The first batch is
    read within the request (a failure is still an answer); each later one within a time budget
    of its own (a database that stops answering cuts the stream: the chunked body ends without
    its last chunk, never looking complete)."""

    def __init__(
        self, budget: Callable[[float], AbstractContextManager[None]] | None, seconds: float, name: str
    ) -> None:
        self._budget = budget or (lambda _: nullcontext())
        self._seconds, self._name = seconds, name

    def answer(
        self, req: falcon.Request, resp: falcon.Response, format_: str, items: Iterator[T], shape: Shape[T]
    ) -> None:
        for name in ("page", "page_size"):
            if req.get_param(name) is not None:
                raise InvalidParameter(
                    name,
                    f"an export (format={format_}) streams every matching record: no {name} (cursor starts after a key)",
                )
        resp.content_type = MEDIA_TYPES[format_]
        resp.downloadable_as = f"kaspero-{self._name}.{format_}"
        resp.stream = chunks(self._batched(items), format_, shape)

    def _batched(self, items: Iterator[T]) -> Iterator[T]:
        first = list(itertools.islice(items, EXPORT_BATCH))  # within the request's own budget

        def rest() -> Iterator[T]:
            block, written = first, 0
            while True:
                yield from block
                written += len(block)
                if len(block) < EXPORT_BATCH:  # a short batch is the last
                    return
                try:
                    with self._budget(self._seconds):
                        block = list(itertools.islice(items, EXPORT_BATCH))
                except Exception as error:
                    log.warning("export_cut", export=self._name, items=written, error=str(error))
                    raise

        return rest()


class DataResource:
    """`/data`: a JSON page, or with `format=csv|ndjson|parquet` (or their `Accept`) every
    matching record as one streamed file (`Streamer`)."""

    def __init__(
        self,
        reader: RecordReader,
        exporter: RecordExporter,
        budget: Callable[[float], AbstractContextManager[None]] | None = None,
        budget_seconds: float = 5.0,
    ) -> None:
        self._reader, self._exporter = reader, exporter
        self._streamer = Streamer(budget, budget_seconds, "data")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = data_query(req)
        format_ = export_format(req, file_format(req, DATA_PARAMETERS))
        if format_ != "json":
            self._streamer.answer(req, resp, format_, export_records(self._exporter, query), RECORDS)
            return
        result = find_records(self._reader, query)
        after = result.next_after
        resp.media = render.page(
            result, encode_cursor(after, query.sort_by, query.sort_order) if after else None
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, record_id: int) -> None:
        QueryParams(req, ())
        resp.media = {"data": render.record(get_record(self._reader, record_id))}


class QuarantineResource:
    """`/quarantine`: quarantined records, newest first; `source`, `run_id`, `reason`; paged by
    `page` or by `cursor` (the previous page's `next_cursor`)."""

    def __init__(
        self,
        reader: QuarantineRecords,
        budget: Callable[[float], AbstractContextManager[None]] | None = None,
        budget_seconds: float = 5.0,
    ) -> None:
        self._reader = reader
        self._streamer = Streamer(budget, budget_seconds, "quarantine")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = quarantine_query(req)
        format_ = export_format(req, file_format(req, QUARANTINE_PARAMETERS))
        if format_ != "json":
            self._streamer.answer(req, resp, format_, export_quarantined(self._reader, query), QUARANTINED)
            return
        result = find_quarantined(self._reader, query)
        full = len(result.items) == query.page_size
        cursor = encode_id_cursor(result.items[-1].id) if full and result.items else None
        resp.media = {
            "data": [render.quarantined(item) for item in result.items],
            "pagination": render.pagination(result, cursor),
        }


class QuarantineReplayResource:
    """`POST /quarantine/replay` (key): queue a replay of the quarantine for the schedulers, as
    `kaspero quarantine replay` runs one; 202 with the request to follow."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, source_kinds: Sequence[str], clock: Clock, guard: ApiKeyGuard
    ) -> None:
        self._uow_factory, self._clock, self.guard = uow_factory, clock, guard
        self._source_kinds = tuple(source_kinds)

    @falcon.before(require_key)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, ())
        body = bounded_json(req)
        if not isinstance(body, dict) or set(body) - {"source", "reason"}:
            raise InvalidParameter(
                "body", 'the body is optional; when given it is {"source": "csv:prices", "reason": "text"}'
            )
        for name, value in body.items():  # given means a text: null is no way to say "every"
            if not isinstance(value, str) or not 0 < len(value) <= 200 or "\x00" in value:
                raise InvalidParameter(name, f"{name} must be a text of 1 to 200 characters")
        source, reason = body.get("source"), body.get("reason")
        if source is not None and source.partition(":")[0] not in self._source_kinds:
            raise InvalidParameter(
                "source", f"{source!r} is of no source kind; known: {', '.join(self._source_kinds)}"
            )
        request_id = request_replay(self._uow_factory, self._clock, source, reason)
        resp.status = falcon.HTTP_202
        resp.location = f"/run-requests/{request_id}"
        resp.media = {"data": render.run_request(get_run_request(self._uow_factory, request_id))}


class HealthResource:
    """`/health`: 200 unless the database is unreachable (503); degraded while any enabled source
    kind's newest run did not succeed, it never ran, or it is stale against its schedule."""

    def __init__(self, health: Callable[[], HealthReport], version: str) -> None:
        self._health = health
        self._version = version

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, ())
        report = self._health()
        resp.media = render.health(report, self._version)
        if report.status is Health.UNHEALTHY:
            resp.status = falcon.HTTP_503


class ReadyResource:
    """`/ready`: the database answers and has every migration this code expects."""

    def __init__(self, probe: HealthProbe) -> None:
        self._probe = probe

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, ())
        report = check_readiness(self._probe)
        resp.media = render.readiness(report)
        resp.status = falcon.HTTP_200 if report.ready else falcon.HTTP_503


class LiveResource:
    """`/live`: the process answers; touches nothing else, so a slow database never kills it."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "alive"}


class RunsResource:
    """`/runs` (newest first; `limit`, `status`, `source`) and `/runs/{id}` with per-source counters.

    `POST /runs` (API key) queues a run for the schedulers: 202 and where to follow it.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        source_kinds: Sequence[str],
        clock: Clock,
        guard: ApiKeyGuard,
        divergence_pct: float = 5.0,
        window: timedelta | None = None,
    ) -> None:
        self._divergence_pct = divergence_pct
        self._window = window
        self._uow_factory = uow_factory
        self._source_kinds = tuple(source_kinds)
        self._clock = clock
        self.guard = guard

    @falcon.before(require_key)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, ())
        body = bounded_json(req)
        if not isinstance(body, dict) or set(body) - {"sources"}:
            raise InvalidParameter("body", 'the body is optional; when given it is {"sources": ["csv", ...]}')
        sources = body.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise InvalidParameter("sources", "sources must be a list of source names")
        unknown = sorted(set(sources) - set(self._source_kinds))
        if unknown:
            raise InvalidParameter(
                "sources", f"unknown source {', '.join(unknown)}; known: {', '.join(self._source_kinds)}"
            )
        request_id = request_run(self._uow_factory, self._clock, sources)
        resp.status = falcon.HTTP_202
        resp.location = f"/run-requests/{request_id}"
        resp.media = {"data": render.run_request(get_run_request(self._uow_factory, request_id))}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("limit", "status", "source"))
        runs = list_runs(
            self._uow_factory,
            limit=params.integer("limit", 20, 1, 100),
            status=params.choice("status", RunStatus),
            source=params.text("source"),
        )
        resp.media = {"data": [render.run(item) for item in runs]}

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, run_id: int) -> None:
        QueryParams(req, ())
        resp.media = {"data": render.run(get_run(self._uow_factory, run_id))}

    def on_get_anomalies(self, req: falcon.Request, resp: falcon.Response, run_id: int) -> None:
        params = QueryParams(req, ("baseline_runs",))
        found = anomalies(
            self._uow_factory,
            run_id,
            params.integer("baseline_runs", 10, 1, 100),
            self._divergence_pct,
            self._window,
        )
        resp.media = {"data": [render.anomaly(item) for item in found]}


class StatsResource:
    """`/stats`: per source, records processed, totals, last success and failure, average duration."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, ())
        resp.media = {"data": [render.stats(item) for item in source_stats(self._uow_factory)]}


class CheckpointsResource:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, ())
        now = datetime.now(UTC)
        resp.media = {"data": [render.checkpoint(item, now) for item in list_checkpoints(self._uow_factory)]}


class SchemaDriftsResource:
    """`/schema-drifts`: findings, newest first; filters `source`, `kind`, `since`, `limit`."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("source", "kind", "since", "limit"))
        findings = list_drift_findings(
            self._uow_factory,
            source=params.text("source"),
            kind=params.choice("kind", DriftKind),
            since=params.timestamp("since"),
            limit=params.integer("limit", 100, 1, 1000),
        )
        resp.media = {"data": [render.drift(item) for item in findings]}


class CompareRunsResource:
    """`/compare-runs?run_a=&run_b=` (or the original `run_id_1` / `run_id_2`); default: the last two."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("run_a", "run_b", "run_id_1", "run_id_2", "price_move_pct"))
        run_a = _one_of(params, "run_a", "run_id_1")
        run_b = _one_of(params, "run_b", "run_id_2")
        if (run_a is None) != (run_b is None):
            missing = "run_b" if run_b is None else "run_a"
            raise InvalidParameter(
                missing, "give both runs to compare (run_a and run_b), or neither for the last two"
            )
        threshold = params.integer("price_move_pct", 10, 0, 1000)
        resp.media = {"data": render.comparison(compare(self._uow_factory, run_a, run_b, float(threshold)))}


def _one_of(params: QueryParams, name: str, original: str) -> int | None:
    value = params.integer(name, 0, 1, declared.MAX_ID) or None
    legacy = params.integer(original, 0, 1, declared.MAX_ID) or None
    if value is not None and legacy is not None and value != legacy:
        raise InvalidParameter(name, f"{name} and {original} name the same run; they disagree")
    return value or legacy


class RunRequestsResource:
    """`/run-requests/{id}`: a queued run's state, and its run once a scheduler ran it."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, request_id: int) -> None:
        QueryParams(req, ())
        resp.media = {"data": render.run_request(get_run_request(self._uow_factory, request_id))}


class AssetsResource:
    """`/assets` (symbol, name search, paged), `/assets/{id}` and `/assets/{id}/history`."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        divergence_pct: float = 5.0,
        window: timedelta | None = None,
        clock: Clock | None = None,
        history: HistoryResource | None = None,
        coverage: CoverageReader | None = None,
        empties: ConfirmedEmpty | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._history = history or HistoryResource(uow_factory)
        self._coverage = coverage
        self._empties = empties
        self._divergence_pct = Decimal(str(divergence_pct))  # sources further apart: `divergent`
        self._window = window  # prices further apart in time are not compared
        self._clock = clock or (lambda: datetime.now(UTC))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("symbol", "search", "page", "page_size"))
        result = find_assets(
            self._uow_factory,
            symbol=params.text("symbol"),
            search=params.text("search"),
            page=list_page(params, cursor_alternative=False),
            page_size=params.integer("page_size", 20, 1, 100),
        )
        resp.media = render.asset_page(result)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, asset_id: int) -> None:
        QueryParams(req, ())
        view = asset_view(self._uow_factory, asset_id, self._window)
        resp.media = {"data": render.asset_view(view, self._divergence_pct, self._clock())}

    def on_get_history(self, req: falcon.Request, resp: falcon.Response, asset_id: int) -> None:
        self._history.answer(req, resp, QueryParams(req, HISTORY_RANGE_PARAMETERS), asset_ids=(asset_id,))

    def on_get_coverage(self, req: falcon.Request, resp: falcon.Response, asset_id: int) -> None:
        params = QueryParams(req, ("interval", "source", "start", "end"))
        start, end = params.timestamp("start"), params.timestamp("end")
        if start and end and start > end:
            raise InvalidParameter("start", "start must not be after end")
        interval = params.choice("interval", Interval, Interval.DAY) or Interval.DAY
        if self._coverage is None:  # pragma: no cover - routed only with a reader
            raise falcon.HTTPNotFound()
        found = asset_coverage(
            self._uow_factory, self._coverage, asset_id, interval, params.text("source"), start, end,
            self._empties,
        )  # fmt: skip
        resp.media = {"data": render.coverage(found)}


class HistoryResource:
    """`/history` (and `/assets/{id}/history`): the candles of one or more assets over a range,
    a JSON page at a time (`next_start`), or the whole range as one streamed file."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        budget: Callable[[float], AbstractContextManager[None]] | None = None,
        budget_seconds: float = 30.0,
        renderer: HistoryRenderer | None = None,
        suspect_pct: Decimal = Decimal(10),
    ) -> None:
        self._uow_factory = uow_factory
        self._streamer = Streamer(budget, budget_seconds, "history")
        self._suspect = suspect_pct / 100
        self._renderer = renderer  # the store's own JSON of a page, when it has that fast path

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, HISTORY_PARAMETERS)
        ids, symbols = asset_ids(params), params.several("symbol")
        if not ids and not symbols:
            raise InvalidParameter("symbol", "name the assets: symbol=BTC,ETH or asset_id=1,2")
        self.answer(req, resp, params, asset_ids=ids, symbols=symbols)

    def answer(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        params: QueryParams,
        asset_ids: tuple[int, ...] = (),
        symbols: tuple[str, ...] = (),
    ) -> None:
        """The history of the assets named, by the request's already read parameters."""
        format_ = export_format(req, params.choice("format", FileFormat))
        query = history_query(params, format_, self._suspect)
        assets = history_assets(self._uow_factory, asset_ids, symbols)
        if format_ != "json":
            items = export_history(self._uow_factory, assets, query)
            self._streamer.answer(req, resp, format_, items, candle_shape(assets))
            return
        if self._renderer is not None:
            rendered = rendered_history(self._renderer, assets, query)
            if rendered is not None:
                resp.media = {"data": Fragment(rendered.candles_json), "next_start": rendered.next_start}
                return
        resp.media = render.history_page(asset_history(self._uow_factory, assets, query))


# what POST /backfills takes: symbols, the providers, the interval, the range, gaps only
BACKFILL_FIELDS = {"symbols", "sources", "interval", "since", "until", "gaps"}


class BackfillsResource:
    """`POST /backfills` (key): plan a history backfill into windows the schedulers take; 202
    with the job. `GET /backfills` the newest jobs, `GET /backfills/{id}` one job's progress,
    counters and errors."""

    def __init__(
        self, queue: BackfillQueue, plan: Callable[..., int], guard: ApiKeyGuard, clock: Clock
    ) -> None:
        self._queue, self._plan, self.guard, self._clock = queue, plan, guard, clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("limit",))
        limit = params.integer("limit", 20, 1, 200)
        resp.media = {"data": [render.backfill_job(job) for job in self._queue.jobs(limit)]}

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        QueryParams(req, ())
        job = self._queue.job(job_id)
        if job is None:
            raise falcon.HTTPNotFound(title="Not found", description=f"no backfill job {job_id}")
        resp.media = {"data": render.backfill_job(job)}

    @falcon.before(require_key)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, ())
        body = bounded_json(req)
        if not isinstance(body, dict) or set(body) - BACKFILL_FIELDS or "symbols" not in body:
            raise InvalidParameter(
                "body",
                'the body is {"symbols": ["BTC"], "sources": ["coingecko"], "interval": "1d", '
                '"since": "2023-01-01", "until": "2024-01-01", "gaps": false} (symbols required)',
            )
        symbols = _texts(body, "symbols", 500)
        sources = _texts(body, "sources", 20) if body.get("sources") is not None else None
        interval = body.get("interval", "1d")
        if not isinstance(interval, str) or interval not in {member.value for member in Interval}:
            raise InvalidParameter("interval", "interval must be one of 5m, 1h, 1d")
        gaps = body.get("gaps", False)
        if not isinstance(gaps, bool):
            raise InvalidParameter("gaps", "gaps must be true or false")
        since, until = _body_moment(body, "since"), _body_moment(body, "until")
        if since is not None and until is not None and since >= until:
            raise InvalidParameter("since", "since must be before until")
        job_id = self._plan(symbols, sources, interval=interval, since=since, until=until, gaps_only=gaps)
        job = self._queue.job(job_id)
        assert job is not None
        resp.status = falcon.HTTP_202
        resp.location = f"/backfills/{job_id}"
        resp.media = {"data": render.backfill_job(job)}


def _texts(body: dict[str, object], name: str, most: int) -> list[str]:
    value = body.get(name)
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= most
        or not all(isinstance(item, str) and 0 < len(item) <= 60 and "\x00" not in item for item in value)
    ):
        raise InvalidParameter(name, f"{name} must be a list of 1 to {most} texts")
    return [str(item) for item in value]


def _body_moment(body: dict[str, object], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidParameter(name, f"{name} must be an ISO 8601 date or date-time")
    return moment_of(name, value)
