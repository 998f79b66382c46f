"""Comparing runs, and scoring a run against its source's history with robust z-scores.

A robust z-score measures how far a figure sits from the baseline's median in units of the
baseline's median absolute deviation (MAD), so one earlier outlier does not hide the next.
When the baseline never varied (MAD = 0, or a single run), deviations are measured against 5%
of the median instead: a perfectly stable source that moves by more than ~18% is flagged.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from domain.records import is_snapshot_source
from domain.runs import EtlRun, RunStatus, SourceCounters, SourceRun

WARNING_SCORE = 3.5  # Iglewicz and Hoaglin's cut-off for modified z-scores
CRITICAL_SCORE = 7.0
STABLE_SCALE = 0.05  # with no spread in the baseline, 5% of the median is one unit
MAD_TO_SIGMA = 0.6745


class Severity(enum.StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


@attrs.frozen
class Anomaly:
    source: str
    metric: str
    baseline: float
    observed: float
    score: float
    severity: Severity
    explanation: str


@attrs.frozen
class DataDelta:
    """What one source's records did between two runs, from what each run observed."""

    in_a: int
    in_b: int
    added: int
    vanished: int
    compared: int
    median_price_move_pct: float | None
    moved_over_threshold: int
    threshold_pct: float
    added_sample: tuple[str, ...] = ()
    vanished_sample: tuple[str, ...] = ()


@attrs.frozen
class SourceDelta:
    """One source in two runs: each counter in A, in B, and B minus A; and the data's delta."""

    source: str
    in_a: SourceCounters | None
    in_b: SourceCounters | None
    status_a: RunStatus | None
    status_b: RunStatus | None
    data: DataDelta | None = None

    @property
    def deltas(self) -> dict[str, int]:
        a, b = self.in_a or SourceCounters(), self.in_b or SourceCounters()
        return {
            field.name: getattr(b, field.name) - getattr(a, field.name)
            for field in attrs.fields(SourceCounters)
        }


@attrs.frozen
class RunComparison:
    run_a: EtlRun
    run_b: EtlRun
    sources: tuple[SourceDelta, ...]
    anomalies: tuple[Anomaly, ...]


@attrs.frozen
class Metric:
    """A figure of a source's run; changes smaller than `min_change` are never anomalies."""

    name: str
    read: Callable[[SourceRun], float | None]
    describe: str
    min_change: float = 0.0
    # against a calm baseline (no spread: every earlier run alike, often all zero) a robust
    # score means nothing; a change of at least these absolute sizes is flagged instead
    warning_change: float | None = None
    critical_change: float | None = None
    rises_only: bool = False  # only more than before is news (fewer suspect bars is no anomaly)


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _snapshot_only(value: Callable[[SourceRun], float]) -> Callable[[SourceRun], float | None]:
    """A figure that says something only for sources read whole each run (a provider's snapshot,
    a feed): a file is read for what was appended to it, and a provider's history
    (`coingecko:1d`) a few windows a pass, so reading less than last time is no anomaly."""
    return lambda s: value(s) if is_snapshot_source(s.source) or s.source.startswith("rss:") else None


METRICS: tuple[Metric, ...] = (
    Metric("volume", _snapshot_only(lambda s: float(s.counters.fetched)), "records fetched", min_change=1),
    Metric(
        "duration_ms",
        _snapshot_only(lambda s: float(s.counters.duration_ms)),
        "duration in ms",
        min_change=250,
    ),
    Metric(
        "quarantine_rate",
        lambda s: _rate(s.counters.quarantined, s.counters.fetched),
        "share of records quarantined",
        min_change=0.01,
        warning_change=0.10,
        critical_change=0.50,
    ),
    Metric(
        "error_rate",
        lambda s: 1.0 if s.status is RunStatus.FAILED else 0.0,
        "share of runs failed",
        0.5,
        warning_change=0.5,
        critical_change=1.0,
    ),
    Metric(
        "retry_rate",
        lambda s: _rate(s.counters.retries, s.counters.http_requests),
        "retries per request",
        0.1,
        warning_change=0.5,
        critical_change=2.0,
    ),
    Metric("freshness_seconds", lambda s: s.freshness_seconds, "age of the newest provider timestamp, s", 60),
    Metric(
        "drift_findings",
        lambda s: float(s.counters.drift_findings),
        "schema drift findings",
        min_change=1,
        warning_change=1,
        critical_change=5,
    ),
    Metric(
        "suspect_bars",
        lambda s: float(s.counters.suspect_bars),
        "bars stored far off the other sources' prices (suspect)",
        min_change=1,
        warning_change=1,
        critical_change=5,
        rises_only=True,
    ),
)


def robust_score(observed: float, baseline: Sequence[float]) -> tuple[float, float]:
    """(median of the baseline, robust z-score of `observed` against it)."""
    median = statistics.median(baseline)
    mad = statistics.median(abs(value - median) for value in baseline)
    if mad > 0:
        return median, MAD_TO_SIGMA * (observed - median) / mad
    unit = STABLE_SCALE * abs(median) if median else 1.0
    return median, (observed - median) / unit


def score_source(source: str, observed: SourceRun, history: Sequence[SourceRun]) -> list[Anomaly]:
    """The anomalies of one source's run against earlier runs of that source."""
    anomalies = []
    for metric in METRICS:
        value = metric.read(observed)
        baseline = [v for v in (metric.read(item) for item in history) if v is not None]
        if metric.rises_only and not baseline:
            baseline = [0.0]  # a count that only rises is news in a source's first run too
        if value is None or not baseline:
            continue
        judged, calm = _calm(metric, source, value, baseline)
        if judged:
            anomalies.extend([calm] if calm is not None else [])
            continue
        median, score = robust_score(value, baseline)
        if not math.isfinite(score) or abs(score) < WARNING_SCORE or abs(value - median) < metric.min_change:
            continue
        if metric.rises_only and score <= 0:
            continue
        direction = "above" if score > 0 else "below"
        anomalies.append(
            Anomaly(
                source=source,
                metric=metric.name,
                baseline=round(median, 6),
                observed=round(value, 6),
                score=round(score, 2),
                severity=Severity.CRITICAL if abs(score) >= CRITICAL_SCORE else Severity.WARNING,
                explanation=(
                    f"{metric.describe}: {value:g} is {abs(score):.1f} robust deviations {direction} "
                    f"the baseline median {median:g} of {len(baseline)} run(s)"
                ),
            )
        )
    return anomalies


def _calm(
    metric: Metric, source: str, value: float, baseline: Sequence[float]
) -> tuple[bool, Anomaly | None]:
    """A metric with absolute floors against a baseline without spread (every earlier run
    alike, often all zero) is judged by the size of its change: (judged so, the anomaly if any).
    Not judged so: it is scored the robust way."""
    if metric.warning_change is None or len(set(baseline)) != 1:
        return False, None
    median = baseline[0]
    change = value - median
    if abs(change) < metric.warning_change or (metric.rises_only and change <= 0):
        return True, None
    critical = metric.critical_change is not None and abs(change) >= metric.critical_change
    score = WARNING_SCORE * change / metric.warning_change
    direction = "up" if change > 0 else "down"
    floors = f"flagged from a change of {metric.warning_change:g}" + (
        f", critical from {metric.critical_change:g}" if metric.critical_change is not None else ""
    )
    return True, Anomaly(
        source=source,
        metric=metric.name,
        baseline=round(median, 6),
        observed=round(value, 6),
        score=round(score, 2),
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        explanation=(
            f"{metric.describe}: {value:g}, {direction} from {median:g} in each of the last "
            f"{len(baseline)} run(s) ({floors})"
        ),
    )


def compare_runs(run_a: EtlRun, run_b: EtlRun) -> RunComparison:
    """Per-source deltas of B against A, and B's anomalies with A as the baseline."""
    a_sources = {item.source: item for item in run_a.sources}
    b_sources = {item.source: item for item in run_b.sources}
    deltas, anomalies = [], []
    for name in sorted(a_sources.keys() | b_sources.keys()):
        in_a, in_b = a_sources.get(name), b_sources.get(name)
        deltas.append(
            SourceDelta(
                source=name,
                in_a=in_a.counters if in_a else None,
                in_b=in_b.counters if in_b else None,
                status_a=in_a.status if in_a else None,
                status_b=in_b.status if in_b else None,
            )
        )
        if in_a is not None and in_b is not None:
            anomalies.extend(score_source(name, in_b, [in_a]))
    return RunComparison(run_a, run_b, tuple(deltas), tuple(anomalies))


def score_run(run: EtlRun, history: Sequence[EtlRun]) -> list[Anomaly]:
    """Each source of `run` against the same source in `history` (earlier runs)."""
    anomalies = []
    for observed in run.sources:
        earlier = [
            item
            for past in history
            for item in past.sources
            if item.source == observed.source and item.status is not RunStatus.RUNNING
        ]
        anomalies.extend(score_source(observed.source, observed, earlier))
    return anomalies


@attrs.frozen
class PriceQuote:
    """One source's latest price of an asset (its symbol for the reader; its canonical id)."""

    symbol: str
    source: str
    price_usd: float
    rank: int | None
    asset_id: int | None = None
    observed_at: datetime | None = None


def price_divergence(
    quotes: Sequence[PriceQuote], threshold_pct: float = 5.0, window: timedelta | None = None
) -> list[Anomaly]:
    """Assets whose sources disagree by more than `threshold_pct` of their median price.

    Quotes are grouped by canonical asset where they have one, by symbol where not (then the
    caller should pass only top ranks, where a symbol names one asset in practice). With a
    `window`, only quotes observed within it of the group's newest are compared: a price from
    long ago is history, not a disagreement.
    """
    grouped: dict[str, list[PriceQuote]] = {}
    for quote in quotes:
        key = f"{quote.symbol}#{quote.asset_id}" if quote.asset_id is not None else quote.symbol
        grouped.setdefault(key, []).append(quote)
    anomalies = []
    for key, group in sorted(grouped.items()):
        shared = in_window(group, window)
        symbol = shared[0].symbol
        if len({quote.source for quote in shared}) < 2:
            continue
        prices = [quote.price_usd for quote in shared]
        median = statistics.median(prices)
        if median <= 0:
            continue
        spread = (max(prices) - min(prices)) / median * 100
        if spread <= threshold_pct:
            continue
        described = ", ".join(
            f"{quote.source} {quote.price_usd:g}" for quote in sorted(shared, key=lambda q: q.source)
        )
        anomalies.append(
            Anomaly(
                source=",".join(sorted({quote.source for quote in shared})),
                metric=f"price_divergence:{key}",
                baseline=round(median, 8),
                observed=round(spread, 3),
                score=round(spread / threshold_pct, 2),
                severity=Severity.CRITICAL if spread > 4 * threshold_pct else Severity.WARNING,
                explanation=f"{symbol}: sources disagree by {spread:.1f}% of the median price ({described})",
            )
        )
    return anomalies


def in_window(quotes: Sequence[PriceQuote], window: timedelta | None) -> list[PriceQuote]:
    """The quotes observed within `window` of the newest one (all of them without a window, and
    those whose time is unknown)."""
    times = [quote.observed_at for quote in quotes if quote.observed_at is not None]
    if window is None or not times:
        return list(quotes)
    newest = max(times)
    return [quote for quote in quotes if quote.observed_at is None or newest - quote.observed_at <= window]
