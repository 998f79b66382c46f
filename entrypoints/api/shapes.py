"""Every JSON shape the API answers with, declared once.

Each shape is a `TypedDict`: `render.py` returns it (mypy holds every rendered dict to its keys
and types) and the OpenAPI document's schemas are generated from it (`schemas()`, by pydantic),
so what is sent and what is described cannot drift apart. Enumerations are the domain's own
(`RunStatus`, `Interval`, …): rendered as the enum's members (orjson writes their values) and
described as one schema each. Rendering stays plain dict literals: no model objects per answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, TypeAdapter, WithJsonSchema
from typing_extensions import TypedDict

from domain.assets import DISPUTED, SUSPECT, Interval, Method
from domain.backfill import JobState
from domain.comparison import Severity
from domain.drift import DriftKind
from domain.health import Health
from domain.records import RecordKind, SourceType
from domain.requests import RequestStatus
from domain.runs import RunStatus, RunTrigger
from entrypoints.api import declared

# money: an exact decimal as a JSON string, positional (0.00000001, never 1E-8)
Money = Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?(E[+-]?\d+)?$")] | None
Id = Annotated[int, Field(ge=1, le=declared.MAX_ID)]
Count = Annotated[int, Field(ge=0)]
Link = str | None


class Meta(TypedDict):
    """Added to every answer with `data` (by the middleware)."""

    request_id: str
    api_latency_ms: float
    timestamp: datetime


class InvalidParam(TypedDict):
    name: str
    reason: str


class Problem(TypedDict):
    """RFC 9457 problem details: every 4xx and 5xx. gunicorn's own refusals (a request line or
    headers too large) come before any request exists: no `instance` nor `request_id`."""

    type: str
    title: str
    status: int
    detail: str
    instance: NotRequired[str]
    request_id: NotRequired[str | None]
    invalid_params: NotRequired[list[InvalidParam]]


class Pagination(TypedDict):
    page: Count
    page_size: Count
    total_items: Count
    total_pages: Count
    total_is_estimate: bool
    next_cursor: str | None


class Lineage(TypedDict):
    raw_id: int | None
    checksum: str
    first_run_id: int | None
    last_run_id: int | None


class Record(TypedDict):
    """One unified record, with the raw row and the runs it came from."""

    id: Id
    source_type: SourceType
    source: str
    source_record_id: str
    kind: RecordKind
    title: str | None
    description: str | None
    author: str | None
    category: str | None
    tags: list[str]
    url: str | None
    published_at: datetime | None
    symbol: str | None
    asset_name: str | None
    quote_currency: Annotated[str | None, Field(description="what `price` is quoted in")]
    price: Money
    price_usd: Money
    open_usd: Money
    high_usd: Money
    low_usd: Money
    bar_seconds: Annotated[int | None, Field(description="a bar's length (files of bars)")]
    market_cap_usd: Money
    volume_24h_usd: Money
    rank: int | None
    pct_change_24h: Money
    observed_at: datetime | None
    extra: dict[str, Any]
    mentions: list[str]
    asset_id: int | None
    lineage: Lineage
    created_at: datetime
    updated_at: datetime


class Counters(TypedDict):
    """What a run (or one batch) did for one source."""

    fetched: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    http_requests: int
    retries: int
    rate_limit_waits: int
    duration_ms: int
    drift_findings: int
    suspect_bars: int


class SourceRun(Counters):
    source: str
    status: RunStatus
    error: str | None


class Run(TypedDict):
    id: Id
    trigger: RunTrigger
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None
    sources: list[SourceRun]


class Anomaly(TypedDict):
    source: str
    metric: str
    baseline: float
    observed: float
    score: float
    severity: Severity
    explanation: str


class DataDelta(TypedDict):
    """What one source's records did between the two runs, from what each run observed."""

    in_a: int
    in_b: int
    added: int
    vanished: int
    compared: int
    median_price_move_pct: float | None
    moved_over_threshold: int
    threshold_pct: float
    added_sample: list[str]
    vanished_sample: list[str]


class SourceDelta(TypedDict):
    source: str
    status_a: RunStatus | None
    status_b: RunStatus | None
    run_a: Counters | None
    run_b: Counters | None
    delta: dict[str, int]
    data: DataDelta | None


class Comparison(TypedDict):
    run_a: Run
    run_b: Run
    sources: list[SourceDelta]
    anomalies: list[Anomaly]


class Stats(TypedDict):
    source: str
    runs: int
    records_processed: int
    totals: Counters
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    average_duration_ms: float | None


class Checkpoint(TypedDict):
    source: str
    cursor: dict[str, Any]
    run_id: int
    updated_at: datetime
    age_seconds: float


class QuarantineLinks(TypedDict):
    first_run: str
    last_run: str


class Quarantined(TypedDict):
    id: Id
    source: str
    source_record_id: str
    reason: Annotated[str, Field(description="why the record could not be loaded")]
    payload: Annotated[dict[str, Any], Field(description="the record as the source sent it")]
    first_run_id: int
    last_run_id: int
    links: QuarantineLinks
    created_at: datetime
    updated_at: datetime


class Drift(TypedDict):
    source: str
    kind: DriftKind
    field: str
    candidate: str | None
    confidence: Annotated[float, Field(ge=0, le=1)]
    auto_mapped: bool
    sample_value: Any
    evidence: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    seen_count: int
    first_run_id: int | None
    last_run_id: int | None


class Replay(TypedDict):
    """A replay of the quarantine: the request's `sources` name sources, not kinds."""

    reason: str | None


class RequestLinks(TypedDict):
    self: str
    run: Link


class RunRequest(TypedDict):
    request_id: Id
    sources: list[str]
    status: RequestStatus
    requested_at: datetime
    claimed_at: datetime | None
    finished_at: datetime | None
    run_id: int | None
    error: str | None
    replay: Replay | None
    links: RequestLinks


class Windows(TypedDict):
    total: int
    pending: int
    running: int
    done: int
    empty: int
    refused: int
    failed: int


class SelfLink(TypedDict):
    self: str


class BackfillJob(TypedDict):
    """A history backfill: its windows (one request each) are taken by the schedulers, or by
    `kaspero backfill`; `progress` is the share of windows settled."""

    job_id: Id
    state: JobState
    symbols: list[str]
    sources: list[str]
    interval: Interval
    since: datetime
    until: datetime
    gaps: bool
    created_at: datetime
    finished_at: datetime | None
    windows: Windows
    progress: Annotated[float, Field(ge=0, le=1)]
    bars: Annotated[int, Field(description="bars stored (or found already stored)")]
    requests: int
    problems: Annotated[
        list[str],
        Field(description="what was not planned: an unknown symbol, no provider id, before the plan's reach"),
    ]
    errors: Annotated[list[str], Field(description="refused or failed windows' reasons")]
    links: SelfLink


class SourceState(TypedDict):
    source: str
    run_id: int
    status: RunStatus
    finished_at: datetime | None
    error: str | None


class KindHealth(TypedDict):
    # a kind is never unhealthy: only the whole service is, when the database is gone
    status: Annotated[Health, WithJsonSchema({"enum": [Health.HEALTHY.value, Health.DEGRADED.value]})]
    last_run_id: int | None
    last_status: RunStatus | None
    last_finished_at: datetime | None
    age_seconds: float | None
    schedule_seconds: float | None
    stale: bool
    reasons: list[str]
    sources: list[SourceState]


class Replica(TypedDict):
    """A `DATABASE_READ_URL`: where (no credentials), reachable, seconds behind the primary."""

    name: str
    reachable: bool
    lag_seconds: float | None
    error: str | None


class HealthReport(TypedDict):
    """Healthy only when every enabled source kind's newest run succeeded and is not stale (older
    than two of its intervals and a minute) and every read replica answers within
    REPLICA_MAX_LAG_SECONDS of the primary; degraded otherwise, with `reasons`."""

    status: Health
    database: bool
    etl_last_run: datetime | None
    etl_last_status: RunStatus | None
    version: str
    reasons: list[str]
    sources: dict[str, KindHealth]
    replicas: list[Replica]


class Ready(TypedDict):
    ready: bool
    database: bool
    pending_migrations: list[str]


class Live(TypedDict):
    status: Literal["alive"]


class Asset(TypedDict):
    id: Id
    symbol: str
    name: str | None
    needs_review: bool


class AliasOfAsset(TypedDict):
    source: str
    source_asset_id: str
    method: Method
    confidence: float


class PriceOfAsset(TypedDict):
    source: str
    price_usd: Money
    observed_at: datetime | None
    age_seconds: int | None
    in_consensus: Annotated[
        bool, Field(description="observed within the consensus window of the newest price")
    ]


class AssetView(Asset):
    aliases: list[AliasOfAsset]
    prices: list[PriceOfAsset]
    consensus_window_seconds: float | None
    consensus_price_usd: Money
    consensus_observed_at: datetime | None
    consensus_age_seconds: int | None
    consensus_sources: list[str]
    spread_pct: Money
    divergent: bool


class Candle(TypedDict):
    bucket: datetime
    asset_id: int
    symbol: str | None
    source: str
    open: Money
    high: Money
    low: Money
    close: Money
    observations: int
    flag: Annotated[
        str | None,
        WithJsonSchema({"anyOf": [{"enum": [SUSPECT, DISPUTED]}, {"type": "null"}]}),
        Field(
            description=(
                "with three sources or more in the bucket, `suspect`: its close is further than "
                "SUSPECT_BAR_PCT from the median close (left out of the consensus); with two that far "
                "apart, both `disputed`; null otherwise and for the consensus"
            )
        ),
    ]
    deviation_pct: Annotated[
        Money, Field(description="how far from the median close (two sources: apart), in percent")
    ]


class Span(TypedDict):
    """Buckets [start, end)."""

    start: datetime
    end: datetime
    buckets: int


class SourceCoverage(TypedDict):
    source: str
    buckets: int
    missing: int
    first: datetime | None
    last: datetime | None
    covered: list[Span]
    gaps: list[Span]
    empty: Annotated[
        list[Span],
        Field(
            description="ranges the provider confirmed empty (a backfill window it answered with nothing): not missing"
        ),
    ]


class Coverage(TypedDict):
    asset_id: Id
    symbol: str
    interval: Interval
    start: datetime | None
    end: datetime | None
    sources: list[SourceCoverage]


# what the document's components name: every shape an answer refers to by name
NAMED: tuple[type, ...] = (
    Problem, Meta, Pagination, Record, Run, SourceRun, Counters, Anomaly, Comparison, Stats,
    Checkpoint, Quarantined, Drift, RunRequest, BackfillJob, HealthReport, KindHealth, Ready, Live,
    Asset, AssetView, Candle, Span, Coverage,
)  # fmt: skip
# the name a shape has in the document where it differs from its class's
DOCUMENT_NAMES = {"HealthReport": "Health", "Health": "HealthStatus"}


def schemas() -> dict[str, Any]:
    """The document's `components.schemas`: each named shape and every shape and enum they use."""
    mode: Literal["serialization"] = "serialization"
    adapters: list[tuple[str, Literal["serialization"], TypeAdapter[Any]]] = [
        (shape.__name__, mode, TypeAdapter(shape)) for shape in NAMED
    ]
    _, document = TypeAdapter.json_schemas(adapters, ref_template="#/components/schemas/{model}")
    found: dict[str, Any] = {
        DOCUMENT_NAMES.get(name, name): _as_documented(schema)
        for name, schema in document.get("$defs", {}).items()
    }
    return found


def _as_documented(schema: Any) -> Any:
    """Pydantic's schema as the document says it: without its generated titles (a property's
    name again, capitalised; a property *called* `title` is kept), every reference by the name
    the document gives the shape."""
    if isinstance(schema, list):
        return [_as_documented(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "$ref" and isinstance(value, str):
            name = value.rsplit("/", 1)[1]
            kept[key] = f"#/components/schemas/{DOCUMENT_NAMES.get(name, name)}"
        elif key == "properties":
            kept[key] = {name: _as_documented(item) for name, item in value.items()}
        else:
            kept[key] = _as_documented(value)
    return kept
