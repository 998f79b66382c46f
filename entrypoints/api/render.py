"""Domain objects to JSON-ready dicts. Money is a JSON string (exact decimal); times carry an offset."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from application.assets import Coverage, HistoryPage
from application.queries import Page
from application.status import HealthReport, ReadinessReport
from domain.assets import Asset, AssetView, Candle
from domain.backfill import BackfillJob
from domain.checkpoints import Checkpoint
from domain.comparison import Anomaly, DataDelta, RunComparison
from domain.coverage import Span
from domain.drift import StoredDrift
from domain.records import StoredQuarantine, StoredRecord
from domain.requests import RunRequest
from domain.runs import EtlRun, SourceCounters, SourceStats
from entrypoints.api import shapes


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # positional: 0.00000001, never 1E-8
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


# datetimes are written by orjson itself, as isoformat() writes them (the fallback's way)
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """orjson, falling back to the json module for what orjson refuses (integers past 64 bits
    in a provider's payload); the output is the same compact UTF-8 JSON either way."""
    try:
        return orjson.dumps(value, default=json_default, option=_ORJSON_OPTIONS)
    except TypeError:
        text = json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def record(item: StoredRecord) -> shapes.Record:
    rec = item.record
    return {
        "id": item.id,
        "source_type": rec.source_type,
        "source": rec.source,
        "source_record_id": rec.source_record_id,
        "kind": rec.kind,
        "title": rec.title,
        "description": rec.description,
        "author": rec.author,
        "category": rec.category,
        "tags": list(rec.tags),
        "url": rec.url,
        "published_at": rec.published_at,
        "symbol": rec.symbol,
        "asset_name": rec.asset_name,
        "quote_currency": rec.quote_currency,
        "price": _money(rec.price),
        "price_usd": _money(rec.price_usd),
        "open_usd": _money(rec.open_usd),
        "high_usd": _money(rec.high_usd),
        "low_usd": _money(rec.low_usd),
        "bar_seconds": rec.bar_seconds,
        "market_cap_usd": _money(rec.market_cap_usd),
        "volume_24h_usd": _money(rec.volume_24h_usd),
        "rank": rec.rank,
        "pct_change_24h": _money(rec.pct_change_24h),
        "observed_at": rec.observed_at,
        "extra": rec.extra,
        "mentions": list(rec.mentions),
        "asset_id": rec.asset_id,
        "lineage": {
            "raw_id": item.raw_id,
            "checksum": rec.checksum,
            "first_run_id": item.first_run_id,
            "last_run_id": item.last_run_id,
        },
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def page(result: Page[StoredRecord], next_cursor: str | None) -> dict[str, Any]:
    return {"data": [record(item) for item in result.items], "pagination": pagination(result, next_cursor)}


def pagination(result: Page[Any], next_cursor: str | None = None) -> shapes.Pagination:
    return {
        "page": result.page,
        "page_size": result.page_size,
        "total_items": result.total_items,
        "total_pages": result.total_pages,
        "total_is_estimate": result.total_is_estimate,
        "next_cursor": next_cursor,
    }


def health(report: HealthReport, version: str) -> shapes.HealthReport:
    return {
        "status": report.status,
        "database": report.database,
        "etl_last_run": report.etl_last_run,
        "etl_last_status": report.etl_last_status,
        "version": version,
        "reasons": report.reasons,
        "sources": {
            kind.kind: {
                "status": kind.status,
                "last_run_id": kind.last_run_id,
                "last_status": kind.last_status,
                "last_finished_at": kind.last_finished_at,
                "age_seconds": None if kind.age_seconds is None else round(kind.age_seconds, 1),
                "schedule_seconds": kind.schedule_seconds,
                "stale": kind.stale,
                "reasons": list(kind.reasons),
                "sources": [
                    {
                        "source": state.source,
                        "run_id": state.run_id,
                        "status": state.status,
                        "finished_at": state.finished_at,
                        "error": state.error,
                    }
                    for state in kind.sources
                ],
            }
            for kind in report.sources
        },
        "replicas": [
            {
                "name": replica.name,
                "reachable": replica.reachable,
                "lag_seconds": None if replica.lag_seconds is None else round(replica.lag_seconds, 3),
                "error": replica.error,
            }
            for replica in report.replicas
        ],
    }


def readiness(report: ReadinessReport) -> shapes.Ready:
    return {
        "ready": report.ready,
        "database": report.database,
        "pending_migrations": list(report.pending_migrations),
    }


def run(item: EtlRun) -> shapes.Run:
    return {
        "id": item.id,
        "trigger": item.trigger,
        "status": item.status,
        "started_at": item.started_at,
        "finished_at": item.finished_at,
        "duration_ms": (
            int((item.finished_at - item.started_at).total_seconds() * 1000) if item.finished_at else None
        ),
        "error": item.error,
        "sources": [
            {
                "source": source.source,
                "status": source.status,
                "error": source.error,
                **counters(source.counters),
            }
            for source in item.sources
        ],
    }


def stats(item: SourceStats) -> shapes.Stats:
    return {
        "source": item.source,
        "runs": item.runs,
        "records_processed": item.totals.fetched,
        "totals": counters(item.totals),
        "last_success_at": item.last_success_at,
        "last_failure_at": item.last_failure_at,
        "last_error": item.last_error,
        "average_duration_ms": round(item.average_duration_ms, 1)
        if item.average_duration_ms is not None
        else None,
    }


def checkpoint(item: Checkpoint, now: datetime) -> shapes.Checkpoint:
    return {
        "source": item.source,
        "cursor": item.cursor,
        "run_id": item.run_id,
        "updated_at": item.updated_at,
        "age_seconds": round((now - item.updated_at).total_seconds(), 3),
    }


def quarantined(item: StoredQuarantine) -> shapes.Quarantined:
    return {
        "id": item.id,
        "source": item.source,
        "source_record_id": item.source_record_id,
        "reason": item.reason,
        "payload": item.payload,
        "first_run_id": item.first_run_id,
        "last_run_id": item.last_run_id,
        "links": {"first_run": f"/runs/{item.first_run_id}", "last_run": f"/runs/{item.last_run_id}"},
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def drift(item: StoredDrift) -> shapes.Drift:
    finding = item.finding
    return {
        "source": item.source,
        "kind": finding.kind,
        "field": finding.field,
        "candidate": finding.candidate or None,
        "confidence": finding.confidence,
        "auto_mapped": finding.auto_mapped,
        "sample_value": finding.sample_value,
        "evidence": dict(finding.evidence),
        "first_seen": item.first_seen,
        "last_seen": item.last_seen,
        "seen_count": item.seen_count,
        "first_run_id": item.first_run_id,
        "last_run_id": item.last_run_id,
    }


def anomaly(item: Anomaly) -> shapes.Anomaly:
    return {
        "source": item.source,
        "metric": item.metric,
        "baseline": item.baseline,
        "observed": item.observed,
        "score": item.score,
        "severity": item.severity,
        "explanation": item.explanation,
    }


def comparison(item: RunComparison) -> shapes.Comparison:
    return {
        "run_a": run(item.run_a),
        "run_b": run(item.run_b),
        "sources": [
            {
                "source": delta.source,
                "status_a": delta.status_a,
                "status_b": delta.status_b,
                "run_a": counters(delta.in_a) if delta.in_a else None,
                "run_b": counters(delta.in_b) if delta.in_b else None,
                "delta": delta.deltas,
                "data": data_delta(delta.data) if delta.data else None,
            }
            for delta in item.sources
        ],
        "anomalies": [anomaly(found) for found in item.anomalies],
    }


def run_request(item: RunRequest) -> shapes.RunRequest:
    return {
        "request_id": item.id,
        "sources": list(item.sources),
        "status": item.status,
        "requested_at": item.requested_at,
        "claimed_at": item.claimed_at,
        "finished_at": item.finished_at,
        "run_id": item.run_id,
        "error": item.error,
        "replay": {"reason": item.replay_reason} if item.replay else None,
        "links": {"self": f"/run-requests/{item.id}", "run": f"/runs/{item.run_id}" if item.run_id else None},
    }


def asset(item: Asset) -> shapes.Asset:
    return {"id": item.id, "symbol": item.symbol, "name": item.name, "needs_review": item.needs_review}


def asset_page(result: Page[Asset]) -> dict[str, Any]:
    return {"data": [asset(item) for item in result.items], "pagination": pagination(result)}


def asset_view(view: AssetView, divergence_pct: Decimal, now: datetime | None = None) -> shapes.AssetView:
    spread = view.spread_pct
    current = set(view.current)
    return {
        **asset(view.asset),
        "aliases": [
            {
                "source": alias.source,
                "source_asset_id": alias.source_asset_id,
                "method": alias.method,
                "confidence": alias.confidence,
            }
            for alias in view.aliases
        ],
        "prices": [
            {
                "source": quote.source,
                "price_usd": _money(quote.price_usd),
                "observed_at": quote.observed_at,
                "age_seconds": (
                    round((now - quote.observed_at).total_seconds())
                    if now is not None and quote.observed_at is not None
                    else None
                ),
                "in_consensus": quote in current,
            }
            for quote in view.quotes
        ],
        "consensus_window_seconds": view.window.total_seconds() if view.window else None,
        "consensus_price_usd": _money(view.consensus_price),
        "consensus_observed_at": view.consensus_at,
        "consensus_age_seconds": (
            round((now - view.consensus_at).total_seconds())
            if now is not None and view.consensus_at is not None
            else None
        ),
        "consensus_sources": [quote.source for quote in view.current],
        "spread_pct": _money(spread),
        "divergent": spread is not None and spread > divergence_pct,
    }


def _span(span: Span) -> shapes.Span:
    return {"start": span.start, "end": span.end, "buckets": span.buckets}


def coverage(item: Coverage) -> shapes.Coverage:
    return {
        "asset_id": item.asset.id,
        "symbol": item.asset.symbol,
        "interval": item.interval,
        "start": item.start,
        "end": item.end,
        "sources": [
            {
                "source": source.source,
                "buckets": source.buckets,
                "missing": source.missing,
                "first": source.covered[0].start if source.covered else None,
                "last": source.covered[-1].end if source.covered else None,
                "covered": [_span(span) for span in source.covered],
                "gaps": [_span(span) for span in source.gaps],
                "empty": [_span(span) for span in source.empty],
            }
            for source in item.sources
        ],
    }


def history_page(page: HistoryPage) -> dict[str, Any]:
    return {
        "data": [candle(item, page.symbols) for item in page.candles],
        "next_start": page.next_start,
    }


def candle(item: Candle, symbols: Mapping[int, str]) -> shapes.Candle:
    return {
        "bucket": item.bucket,
        "asset_id": item.asset_id,
        "symbol": symbols.get(item.asset_id),
        "source": item.source,
        "open": _money(item.open),
        "high": _money(item.high),
        "low": _money(item.low),
        "close": _money(item.close),
        "observations": item.observations,
        "flag": item.flag,
        "deviation_pct": _money(item.deviation_pct),
    }


def backfill_job(job: BackfillJob) -> shapes.BackfillJob:
    counts = job.windows
    return {
        "job_id": job.id,
        "state": job.state,
        "symbols": list(job.request.symbols),
        "sources": list(job.request.kinds),
        "interval": job.request.interval,
        "since": job.request.since,
        "until": job.request.until,
        "gaps": job.request.gaps_only,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "windows": {
            "total": counts.total,
            "pending": counts.pending,
            "running": counts.running,
            "done": counts.done,
            "empty": counts.empty,
            "refused": counts.refused,
            "failed": counts.failed,
        },
        "progress": round(counts.settled / counts.total, 4) if counts.total else 1.0,
        "bars": job.bars,
        "requests": job.requests,
        "problems": list(job.problems),
        "errors": list(job.errors),
        "links": {"self": f"/backfills/{job.id}"},
    }


def counters(item: SourceCounters) -> shapes.Counters:
    return {
        "fetched": item.fetched,
        "inserted": item.inserted,
        "updated": item.updated,
        "unchanged": item.unchanged,
        "quarantined": item.quarantined,
        "http_requests": item.http_requests,
        "retries": item.retries,
        "rate_limit_waits": item.rate_limit_waits,
        "duration_ms": item.duration_ms,
        "drift_findings": item.drift_findings,
        "suspect_bars": item.suspect_bars,
    }


def data_delta(item: DataDelta) -> shapes.DataDelta:
    return {
        "in_a": item.in_a,
        "in_b": item.in_b,
        "added": item.added,
        "vanished": item.vanished,
        "compared": item.compared,
        "median_price_move_pct": item.median_price_move_pct,
        "moved_over_threshold": item.moved_over_threshold,
        "threshold_pct": item.threshold_pct,
        "added_sample": list(item.added_sample),
        "vanished_sample": list(item.vanished_sample),
    }
