"""Canonical assets in memory, read from the stored records as the SQL adapter reads its tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from adapters.memory.state import InMemoryStore, State
from application.queries import Page
from domain.assets import (
    SUSPECT,
    Alias,
    Asset,
    Candle,
    HistoryPoint,
    HistoryQuery,
    Interval,
    SourceQuote,
    bucket_of,
    candle_of,
    judge_bars,
)
from domain.bars import UsdRate
from domain.coverage import Span
from domain.plausibility import Reference
from domain.records import RecordKind


class InMemoryAssetRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def aliases(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        return {key: self._state.aliases[key].asset_id for key in keys if key in self._state.aliases}

    def with_symbols(self, symbols: Sequence[str]) -> list[Asset]:
        wanted = set(symbols)
        return [asset for asset in self._state.assets.values() if asset.symbol in wanted]

    def ranks(self, asset_ids: Sequence[int]) -> dict[int, int]:
        wanted = set(asset_ids)
        ranks: dict[int, int] = {}
        for item in self._state.records.values():
            asset, rank = item.record.asset_id, item.record.rank
            if asset in wanted and rank is not None:
                ranks[asset] = min(rank, ranks.get(asset, rank))
        return ranks

    def create(self, assets: Sequence[Asset]) -> list[int]:
        made = []
        for asset in assets:
            asset_id = max(self._state.assets, default=0) + 1
            self._state.assets[asset_id] = Asset(asset_id, asset.symbol, asset.name, asset.needs_review)
            made.append(asset_id)
        return made

    def link(self, aliases: Sequence[Alias]) -> None:
        for alias in aliases:
            self._state.aliases.setdefault((alias.source, alias.source_asset_id), alias)

    def find(self, symbol: str | None, search: str | None, page: int, page_size: int) -> Page[Asset]:
        chosen = [
            asset
            for asset in sorted(self._state.assets.values(), key=lambda a: a.id)
            if (symbol is None or asset.symbol == symbol)
            and (search is None or search.lower() in (asset.name or "").lower())
        ]
        start = (page - 1) * page_size
        return Page(
            items=chosen[start : start + page_size], page=page, page_size=page_size, total_items=len(chosen)
        )

    def get(self, asset_id: int) -> Asset | None:
        return self._state.assets.get(asset_id)

    def aliases_of(self, asset_id: int) -> list[Alias]:
        found = [alias for alias in self._state.aliases.values() if alias.asset_id == asset_id]
        return sorted(found, key=lambda alias: (alias.source, alias.source_asset_id))

    def latest_quotes(self, asset_id: int) -> list[SourceQuote]:
        latest: dict[str, SourceQuote] = {}
        for item in self._state.records.values():
            record = item.record
            if (
                record.asset_id != asset_id
                or record.kind is not RecordKind.MARKET
                or record.price_usd is None
            ):
                continue
            seen = latest.get(record.source)
            if seen is None or (
                record.observed_at and (seen.observed_at is None or record.observed_at > seen.observed_at)
            ):
                latest[record.source] = SourceQuote(record.source, record.price_usd, record.observed_at)
        return [latest[source] for source in sorted(latest)]

    def history(self, asset_ids: Sequence[int], query: HistoryQuery) -> list[Candle]:
        step = query.interval.step
        consensus = query.source == "consensus"
        points: dict[tuple[datetime, int], dict[str, list[HistoryPoint]]] = {}
        for (asset, source, observed), point in self._state.history.items():
            if (
                asset not in asset_ids
                or (query.start and observed < query.start)
                or (query.end and observed > query.end)
            ):
                continue
            points.setdefault((bucket_of(observed, step), asset), {}).setdefault(source, []).append(point)
        candles: list[Candle] = []
        for (bucket, asset), by_source in sorted(points.items()):
            per_source = {name: candle_of(asset, bucket, name, held) for name, held in by_source.items()}
            judged = judge_bars({name: candle.close for name, candle in per_source.items()}, query.suspect)
            if consensus:  # every source's bars together but the suspect ones'
                kept = [p for name, held in by_source.items() if judged[name][0] != SUSPECT for p in held]
                candles.append(candle_of(asset, bucket, "consensus", kept))
                continue
            for name in sorted(per_source):
                if query.source is None or name == query.source:
                    flag, deviation = judged[name]
                    candles.append(attrs.evolve(per_source[name], flag=flag, deviation_pct=deviation))
        return candles if query.limit is None else candles[: query.limit]


class InMemoryUsdRateRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    def usd_rates(
        self, symbol: str, bars: Sequence[tuple[datetime, int]]
    ) -> dict[tuple[datetime, int], UsdRate]:
        assets = {asset.id for asset in self._state.assets.values() if asset.symbol == symbol.upper()}
        rates = {}
        for start, seconds in bars:
            latest = self._latest_per_source(assets, start, seconds)
            if latest:
                prices = sorted(point.close for _, point in latest.values())
                median = prices[(len(prices) - 1) // 2]  # the lower middle, as percentile_disc
                observed = max(moment for moment, _ in latest.values())
                rates[(start, seconds)] = UsdRate(symbol.upper(), median, observed, ",".join(sorted(latest)))
        return rates

    def other_sources(self, asset_ids: Sequence[int], source: str) -> dict[int, tuple[str, ...]]:
        found: dict[int, set[str]] = {}
        for asset, name, _ in self._state.history:
            if asset in asset_ids and name != source:
                found.setdefault(asset, set()).add(name)
        return {asset: tuple(sorted(names)) for asset, names in found.items()}

    def reference_prices(
        self, bars: Sequence[tuple[int, datetime, int]], sources: Mapping[int, Sequence[str]]
    ) -> dict[tuple[int, datetime, int], Reference]:
        references = {}
        for asset, start, seconds in bars:
            latest = {
                name: value
                for name, value in self._latest_per_source({asset}, start, seconds).items()
                if name in sources.get(asset, ())
            }
            if latest:
                prices = sorted(point.close for _, point in latest.values())
                references[(asset, start, seconds)] = Reference(
                    prices[(len(prices) - 1) // 2], tuple(sorted(latest))
                )
        return references

    def _latest_per_source(
        self, assets: set[int], start: datetime, seconds: int
    ) -> dict[str, tuple[datetime, Any]]:
        end = start + timedelta(seconds=seconds)
        latest: dict[str, tuple[datetime, Any]] = {}
        for (asset, source, observed), point in self._state.history.items():
            if (
                asset in assets
                and start <= observed < end
                and (source not in latest or observed > latest[source][0])
            ):
                latest[source] = (observed, point)
        return latest


class InMemoryCoverage:
    """The fake store's coverage: each observation covers the bucket it falls in (the fake keeps
    no bar lengths, so a long bar covers only its first bucket here)."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def covered(
        self,
        asset_id: int,
        interval: Interval,
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, list[Span]]:
        step = interval.step
        first = bucket_of(start, step) if start is not None else None
        last = bucket_of(end, step) if end is not None else None
        buckets: dict[str, set[datetime]] = {}
        with self._store.lock:
            for asset, name, observed in self._store.state.history:
                bucket = bucket_of(observed, step)
                if (
                    asset == asset_id
                    and (source is None or name == source)
                    and (first is None or bucket >= first)
                    and (last is None or bucket <= last)
                ):
                    buckets.setdefault(name, set()).add(bucket)
        found: dict[str, list[Span]] = {}
        for name, held in sorted(buckets.items()):
            spans = found.setdefault(name, [])
            for bucket in sorted(held):
                if spans and spans[-1].end == bucket:
                    spans[-1] = Span(spans[-1].start, bucket + step, spans[-1].buckets + 1)
                else:
                    spans.append(Span(bucket, bucket + step, 1))
        return found
