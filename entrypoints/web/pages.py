"""The dashboard's pages: server-rendered HTML over the same use cases as the JSON API.

Read-only: nothing here changes data (the login form only sets a session cookie: a signed,
expiring token that authorises reads, never the key, never a write). Templates escape everything by default (Jinja2 autoescape):
feed titles, CSV cells and drift field names are untrusted text.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import attrs
import falcon
import jinja2
from markupsafe import Markup

from application.assets import asset_coverage, asset_history, asset_view, find_assets
from application.browse import find_quarantined, find_records
from application.comparison import anomalies, compare
from application.operations import list_drift_findings, source_stats
from application.ports import (
    BackfillQueue,
    Clock,
    CoverageReader,
    QuarantineReader,
    RecordReader,
    UnitOfWorkFactory,
)
from application.queries import DataQuery, QuarantineQuery
from application.runs import get_run, list_runs, run_before
from application.status import HealthReport
from domain.assets import RESOLUTION, Candle, HistoryQuery, Interval
from domain.records import RecordKind
from domain.runs import EtlRun, RunStatus, RunTrigger, SourceRun
from entrypoints.api.auth import KEY_COOKIE, SESSION_SECONDS, ApiKeyGuard, LoginThrottle
from entrypoints.api.clients import ClientSide
from entrypoints.api.declared import id_segment
from entrypoints.api.errors import InvalidParameter, serialize_problem
from entrypoints.api.params import QueryParams, list_page
from entrypoints.api.resources import read_body
from entrypoints.web.charts import bar_size, candles, coverage_band, sparkline

HERE = Path(__file__).resolve().parent
RANGES = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "1y": timedelta(days=365),
    "all": None,
}
MAX_CANDLES = 2000  # drawn on one chart; the caption says when older ones were left out
DEFAULT_RANGE = {Interval.FIVE_MINUTES: "1d", Interval.HOUR: "7d", Interval.DAY: "1y"}


@attrs.frozen
class DashboardOptions:
    schedules: Mapping[str, float] = attrs.field(factory=dict)  # source kind -> minutes
    divergence_pct: Decimal = Decimal(5)
    window: timedelta | None = timedelta(minutes=15)
    suspect: Decimal = Decimal("0.10")  # SUSPECT_BAR_PCT / 100: suspect candles stay out of the consensus
    version: str = ""
    clients: ClientSide = attrs.field(factory=ClientSide)


def templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["ago"] = ago
    environment.filters["seconds"] = seconds
    environment.filters["money"] = money
    # JSON to read in a <pre>: the text as sent (autoescape makes it safe), not tojson's \u003c
    environment.filters["pretty"] = lambda value: json.dumps(value, indent=1, ensure_ascii=False, default=str)
    environment.filters["shell"] = shlex.quote  # a value as one word of a shell command
    environment.filters["number"] = lambda value: "—" if value is None else f"{value:,}"
    return environment


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "never"
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    return seconds(delta) + " ago" if delta >= 0 else "in " + seconds(delta)


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    value = abs(value)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} s"


def money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.8g}"


def kind_of(source: str) -> str:
    return source.partition(":")[0]


@attrs.frozen
class SourceCard:
    source: str
    last: SourceRun | None
    last_run: EtlRun | None
    stats: Any
    schedule_minutes: float | None
    spark: Any
    quarantined: int = 0

    @property
    def old_data(self) -> bool:
        """A live source (API, feed) whose newest data is older than two of its intervals."""
        if kind_of(self.source) == "csv" or self.last is None or self.last.freshness_seconds is None:
            return False
        return (
            self.schedule_minutes is not None and self.last.freshness_seconds > 2 * self.schedule_minutes * 60
        )


class Dashboard:
    def __init__(
        self,
        reader: RecordReader,
        quarantine: QuarantineReader | None,
        health: Callable[[], HealthReport],
        uow_factory: UnitOfWorkFactory,
        options: DashboardOptions,
        clock: Clock,
        guard: ApiKeyGuard,
        coverage: CoverageReader | None = None,
        backfills: BackfillQueue | None = None,
    ) -> None:
        self._reader, self._quarantine, self._health = reader, quarantine, health
        self._coverage = coverage
        self._backfills = backfills
        self._uow_factory, self._options, self._clock, self._guard = uow_factory, options, clock, guard
        self._templates = templates()
        self._throttle = LoginThrottle()

    def _page(self, resp: falcon.Response, template: str, **context: Any) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self._templates.get_template(template).render(
            now=self._clock(), version=self._options.version, **context
        )

    # ---- / -------------------------------------------------------------------------------------

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        QueryParams(req, (), form=True)
        health = self._health()
        runs = list_runs(self._uow_factory, 30) if health.database else []
        stats = source_stats(self._uow_factory) if health.database else []
        series: dict[str, list[tuple[EtlRun, SourceRun]]] = defaultdict(list)
        for run in reversed(runs):  # oldest first
            for item in run.sources:
                series[item.source].append((run, item))
        cards = []
        for stat in sorted(stats, key=lambda item: item.source):
            seen = series.get(stat.source, [])
            cards.append(
                SourceCard(
                    source=stat.source,
                    last=seen[-1][1] if seen else None,
                    last_run=seen[-1][0] if seen else None,
                    stats=stat,
                    # a backfill's history (`coingecko:1d`) keeps no schedule: old data is its point
                    schedule_minutes=None
                    if seen and seen[-1][0].trigger is RunTrigger.BACKFILL
                    else self._options.schedules.get(kind_of(stat.source)),
                    spark=sparkline(
                        [item.counters.fetched for _, item in seen], label=f"{stat.source} records per run"
                    ),
                    quarantined=self._quarantined(stat.source),
                )
            )
        self._page(resp, "overview.html", title="Overview", health=health, cards=cards, runs=runs[:5])

    def _quarantined(self, source: str) -> int:
        """What the quarantine holds for a source now (what its page lists), not a sum over runs
        that counts a record again each run it was read."""
        if self._quarantine is None:  # pragma: no cover - wired in production
            return 0
        return find_quarantined(self._quarantine, QuarantineQuery(source=source, page_size=1)).total_items

    # ---- /ui/runs ------------------------------------------------------------------------------

    def on_get_runs(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("source", "status"), form=True)
        status = params.choice("status", RunStatus)
        source = params.text("source")
        runs = list_runs(self._uow_factory, 50, status, source)
        sources = sorted(stat.source for stat in source_stats(self._uow_factory))
        jobs = self._backfills.jobs(10) if self._backfills is not None else []
        self._page(
            resp, "runs.html", title="Runs", runs=runs, status=status.value if status else "", source=source or "",
            statuses=[member.value for member in RunStatus], sources=sources, jobs=jobs,
        )  # fmt: skip

    def on_get_run(self, req: falcon.Request, resp: falcon.Response, run_id: int) -> None:
        QueryParams(req, (), form=True)
        run = get_run(self._uow_factory, run_id)
        found = anomalies(self._uow_factory, run_id, window=self._options.window)
        previous = run_before(self._uow_factory, run_id)
        comparison = compare(self._uow_factory, previous.id, run_id) if previous else None
        self._page(
            resp,
            "run.html",
            title=f"Run {run.id}",
            run=run,
            anomalies=found,
            previous=previous,
            comparison=comparison,
        )

    # ---- /ui/drift, /ui/quarantine -------------------------------------------------------------

    def on_get_drift(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("source",), form=True)
        findings = list_drift_findings(self._uow_factory, source=params.text("source"), limit=200)
        self._page(resp, "drift.html", title="Schema drift", findings=findings)

    def on_get_quarantine(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("source", "reason"), form=True)
        if self._quarantine is None:  # pragma: no cover - wired in production
            raise falcon.HTTPNotFound()
        query = QuarantineQuery(source=params.text("source"), reason=params.text("reason"), page_size=100)
        page = find_quarantined(self._quarantine, query)
        groups: dict[str, list[Any]] = defaultdict(list)
        for item in page.items:
            groups[item.reason].append(item)
        ordered = sorted(groups.items(), key=lambda group: -len(group[1]))
        self._page(
            resp, "quarantine.html", title="Quarantine", groups=ordered, total=page.total_items,
            shown=len(page.items), source=query.source or "", reason=query.reason or "",
        )  # fmt: skip

    # ---- /ui/assets ----------------------------------------------------------------------------

    def on_get_assets(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = QueryParams(req, ("q", "page"), form=True)
        text = params.text("q")
        page = list_page(params, cursor_alternative=False)
        symbol_hits = find_assets(self._uow_factory, text, None, 1, 50).items if text else []
        name_hits = find_assets(self._uow_factory, None, text, page, 50)
        seen = {asset.id for asset in symbol_hits}
        assets = [*symbol_hits, *(asset for asset in name_hits.items if asset.id not in seen)]
        self._page(resp, "assets.html", title="Assets", assets=assets, q=text or "", page=page)

    def on_get_asset(self, req: falcon.Request, resp: falcon.Response, asset_id: int) -> None:
        params = QueryParams(req, ("interval", "range", "series"), form=True)
        interval = params.choice("interval", Interval, Interval.DAY) or Interval.DAY
        chosen = params.text("range") or DEFAULT_RANGE[interval]
        if chosen not in RANGES:
            raise InvalidParameter("range", f"range must be one of {', '.join(RANGES)}")
        view = asset_view(self._uow_factory, asset_id, self._options.window)
        newest: dict[str, datetime | None] = {
            quote.source: quote.observed_at for quote in view.quotes if quote.observed_at is not None
        }
        # the consensus folds every source's history: it reaches as far as the newest of them (the
        # quotes agreeing now may be older than a backfilled day: "1y" is then still a year)
        newest["consensus"] = max((moment for moment in newest.values() if moment), default=view.consensus_at)
        sources = sorted({quote.source for quote in view.quotes})
        asked = params.text("series")
        if asked is not None and asked != "consensus" and asked not in sources:
            raise InvalidParameter(
                "series", f"series must be consensus or one of {', '.join(sources) or 'no source'}"
            )

        def history_of(name: str) -> list[Candle]:
            # the range ends at this series' own newest observation, not at any source's; the
            # chart draws MAX_CANDLES at most, so "all" reads one more than that (the caption
            # then says older ones were left out)
            end, span = newest.get(name), RANGES[chosen]
            if end is None:
                return []
            start = end - (span if span is not None else interval.step * (MAX_CANDLES + 1))
            page = asset_history(
                self._uow_factory,
                {asset_id: view.asset.symbol},
                HistoryQuery(
                    interval=interval, start=start, end=None, source=name, suspect=self._options.suspect
                ),
            )
            return list(page.candles)

        if asked is not None:
            series, history = asked, history_of(asked)
        else:  # the first series with a chart to draw: the consensus, else the newest source's
            by_newest = sorted(sources, key=lambda name: newest.get(name) or datetime.min.replace(tzinfo=UTC))
            series, history = "consensus", history_of("consensus")
            for name in reversed(by_newest):
                if len(history) >= 2:
                    break
                candidate = history_of(name)
                if len(candidate) > len(history):
                    series, history = name, candidate
        shown = history[-MAX_CANDLES:]
        bar = bar_size(shown, interval.step)
        band = Markup("")
        if self._coverage is not None and shown:
            # each source's coverage over the chart's span, at the chart's interval
            first, last = shown[0].bucket, shown[-1].bucket + bar
            covered = asset_coverage(
                self._uow_factory, self._coverage, asset_id, interval, None, first, last - RESOLUTION,
                self._backfills,
            )  # fmt: skip
            band = coverage_band(covered.sources, first, last)
        news = find_records(
            self._reader, DataQuery(kind=RecordKind.ARTICLE, symbol=view.asset.symbol, page_size=8)
        ).items
        spread = view.spread_pct
        self._page(
            resp, "asset.html", title=f"{view.asset.name or view.asset.symbol} ({view.asset.symbol})", view=view,
            current=set(view.current), chart=candles(shown, f"{view.asset.symbol} {series} {interval.value}", interval.step),
            candles=shown, total=len(history), interval=interval.value, range=chosen, series=series, sources=sources,
            intervals=[member.value for member in Interval], ranges=list(RANGES), news=news, spread=spread,
            divergent=spread is not None and spread > self._options.divergence_pct, newest=newest.get(series),
            bar=bar if bar > interval.step else None, band=band,
        )  # fmt: skip

    # ---- /ui/login -----------------------------------------------------------------------------

    def on_get_login(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._page(resp, "login.html", title="Sign in", next=_local(req.get_param("next")), error=None)

    def on_post_login(self, req: falcon.Request, resp: falcon.Response) -> None:
        client = self._options.clients.address(req)
        wait = self._throttle.wait_seconds(client)
        if wait > 0:
            resp.status = falcon.HTTP_429
            resp.set_header("Retry-After", str(int(wait) + 1))
            self._page(
                resp, "login.html", title="Sign in", next="/",
                error=f"Too many failed attempts from {client}: try again in {int(wait) + 1} s.",
            )  # fmt: skip
            return
        form = parse_qs(read_body(req, 4096).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0]
        target = _local((form.get("next") or ["/"])[0])
        if not self._guard.accepts(key):
            self._throttle.failed(client)
            resp.status = falcon.HTTP_401
            self._page(
                resp, "login.html", title="Sign in", next=target, error="That key is not one of API_KEYS."
            )
            return
        resp.set_cookie(
            KEY_COOKIE, self._guard.session_for(key), http_only=True, same_site="Strict", path="/",
            secure=self._options.clients.https(req), max_age=SESSION_SECONDS,
        )  # fmt: skip
        raise falcon.HTTPSeeOther(target)


def _local(target: str | None) -> str:
    """Only a path on this site: never another host (`//evil`, `https://…`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _a_page(req: falcon.Request) -> bool:
    """A request for one of the dashboard's pages (not the JSON API, not a static file)."""
    return (req.path == "/" or req.path.startswith("/ui/")) and not req.path.startswith("/ui/static/")


class PageErrors:
    """The dashboard's errors as pages a person reads, with the way back; the API's stay
    problem+json."""

    def __init__(self) -> None:
        self._template = templates().get_template("error.html")

    def __call__(self, req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
        if not _a_page(req):
            serialize_problem(req, resp, error)
            return
        heading = error.title or ""
        resp.text = self._template.render(
            title=f"{error.status_code} {heading}", status=error.status_code, heading=heading,
            detail=error.description or heading,
        )  # fmt: skip
        resp.content_type = falcon.MEDIA_HTML


def install_dashboard(app: falcon.App[falcon.Request, falcon.Response], dashboard: Dashboard) -> None:
    app.set_error_serializer(PageErrors())
    app.add_route("/", dashboard)
    app.add_route("/ui/runs", dashboard, suffix="runs")
    app.add_route(f"/ui/runs/{id_segment('run_id')}", dashboard, suffix="run")
    app.add_route("/ui/drift", dashboard, suffix="drift")
    app.add_route("/ui/quarantine", dashboard, suffix="quarantine")
    app.add_route("/ui/assets", dashboard, suffix="assets")
    app.add_route(f"/ui/assets/{id_segment('asset_id')}", dashboard, suffix="asset")
    app.add_route("/ui/login", dashboard, suffix="login")
    app.add_static_route("/ui/static", str(HERE / "static"))
