"""Canonical assets: market records get theirs as they load; `/assets` reads them back."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from application.errors import InvalidQuery, NotFound
from application.ports import (
    CatalogUnits,
    ConfirmedEmpty,
    CoverageReader,
    HistoryRenderer,
    IngestUnit,
    RenderedHistory,
)
from application.queries import Page
from domain.assets import (
    RESOLUTION,
    Alias,
    Asset,
    AssetView,
    Candidate,
    Candle,
    CrossReference,
    HistoryQuery,
    Interval,
    Method,
    history_page,
    resolve,
)
from domain.coverage import SourceCoverage, Span, gaps_between, less_empty
from domain.records import RecordKind, SourceType, UnifiedRecord


def source_asset_id(record: UnifiedRecord) -> str:
    """How a source names the asset of a record: an API's coin id, a file's symbol."""
    return record.source_record_id if record.source_type is SourceType.API else (record.symbol or "")


def assign_assets(
    records: list[UnifiedRecord], uow: IngestUnit, crossref: Sequence[CrossReference]
) -> list[UnifiedRecord]:
    """Each market record with the id of its canonical asset; new assets and aliases stored."""
    # a record whose reader knew its asset (a backfill window is of one asset) keeps it
    markets = [
        record
        for record in records
        if record.kind is RecordKind.MARKET and record.symbol and record.asset_id is None
    ]
    if not markets:
        return records
    candidates = {
        (record.source, source_asset_id(record)): Candidate(
            record.source, source_asset_id(record), record.symbol or "", record.asset_name, record.rank
        )
        for record in markets
    }
    known = resolve_assets(candidates, uow, crossref)
    return [
        attrs.evolve(record, asset_id=known[(record.source, source_asset_id(record))])
        if record.kind is RecordKind.MARKET and record.symbol and record.asset_id is None
        else record
        for record in records
    ]


def resolve_assets(
    candidates: Mapping[tuple[str, str], Candidate], uow: IngestUnit, crossref: Sequence[CrossReference]
) -> dict[tuple[str, str], int]:
    """The canonical asset of each (source, source asset id): known by its alias, else resolved
    and stored (new assets and aliases), in the candidates' order."""
    known = uow.assets.aliases(list(candidates))
    unknown = [candidate for key, candidate in candidates.items() if key not in known]
    if unknown:
        known |= _resolve_and_store(unknown, uow, crossref)
    return known


def file_symbol_assets(
    source: str, names: Mapping[str, str | None], uow: IngestUnit, crossref: Sequence[CrossReference]
) -> dict[str, int]:
    """The canonical asset of each symbol of a file (with its asset name, if the file gives one),
    as `assign_assets` finds the assets of the file's records."""
    candidates = {
        (source, symbol): Candidate(source, symbol, symbol, name, None) for symbol, name in names.items()
    }
    known = resolve_assets(candidates, uow, crossref)
    return {symbol: known[(source, symbol)] for symbol in names}


def _resolve_and_store(
    unknown: list[Candidate], uow: IngestUnit, crossref: Sequence[CrossReference]
) -> dict[tuple[str, str], int]:
    symbols = sorted(_curated_symbols(unknown, crossref))
    by_symbol: dict[str, list[Asset]] = {}
    for asset in uow.assets.with_symbols(symbols):
        by_symbol.setdefault(asset.symbol, []).append(asset)
    ranks = uow.assets.ranks([asset.id for assets in by_symbol.values() for asset in assets])
    fresh: list[Asset] = []  # created by this batch, with provisional ids below zero
    matched: list[tuple[Candidate, int, Method, float]] = []
    for candidate in unknown:
        # only assets that could match: the candidate's symbol, or the symbol its curated entry gives
        near = [asset for symbol in _symbols_for(candidate, crossref) for asset in by_symbol.get(symbol, [])]
        found = resolve(candidate, near, crossref, ranks)
        asset_id = found.asset_id
        if asset_id is None:
            asset_id = -(len(fresh) + 1)
            new = Asset(asset_id, found.symbol, found.name, found.needs_review)
            fresh.append(new)
            by_symbol.setdefault(new.symbol, []).append(new)
        matched.append((candidate, asset_id, found.method, found.confidence))
    real = dict(zip((asset.id for asset in fresh), uow.assets.create(fresh), strict=True)) if fresh else {}
    aliases = [
        Alias(candidate.source, candidate.source_asset_id, real.get(asset_id, asset_id), method, confidence)
        for candidate, asset_id, method, confidence in matched
    ]
    uow.assets.link(aliases)
    return {(alias.source, alias.source_asset_id): alias.asset_id for alias in aliases}


def _symbols_for(candidate: Candidate, crossref: Sequence[CrossReference]) -> list[str]:
    kind = candidate.source.partition(":")[0]
    curated = [entry.symbol for entry in crossref if entry.ids.get(kind) == candidate.source_asset_id]
    return sorted({candidate.symbol.upper(), *curated})


def _curated_symbols(candidates: Sequence[Candidate], crossref: Sequence[CrossReference]) -> set[str]:
    return {symbol for candidate in candidates for symbol in _symbols_for(candidate, crossref)}


def find_assets(
    uow_factory: CatalogUnits, symbol: str | None, search: str | None, page: int, page_size: int
) -> Page[Asset]:
    with uow_factory() as uow:
        return uow.assets.find(symbol.upper() if symbol else None, search, page, page_size)


def asset_view(uow_factory: CatalogUnits, asset_id: int, window: timedelta | None = None) -> AssetView:
    """An asset, its aliases, each source's latest price, and the consensus of the prices
    observed within `window` of the newest."""
    with uow_factory() as uow:
        asset = uow.assets.get(asset_id)
        if asset is None:
            raise NotFound(f"no asset with id {asset_id}")
        return AssetView(
            asset, tuple(uow.assets.aliases_of(asset_id)), tuple(uow.assets.latest_quotes(asset_id)), window
        )


MAX_HISTORY_ASSETS = 50  # assets one history request or export names


@attrs.frozen
class HistoryPage:
    """A page of the candles of one or more assets, the bucket the next page starts at (None:
    the range is done), and each asset's symbol."""

    candles: tuple[Candle, ...]
    next_start: datetime | None
    symbols: Mapping[int, str]


def history_assets(
    uow_factory: CatalogUnits, asset_ids: Sequence[int] = (), symbols: Sequence[str] = ()
) -> dict[int, str]:
    """The assets a history names, by id and by symbol (every asset of the symbol), each with its
    symbol; NotFound names the first id or symbol no asset has."""
    found: dict[int, str] = {}
    with uow_factory() as uow:
        for asset_id in asset_ids:
            asset = uow.assets.get(asset_id)
            if asset is None:
                raise NotFound(f"no asset with id {asset_id}")
            found[asset.id] = asset.symbol
        for symbol in symbols:
            page = uow.assets.find(symbol.upper(), None, 1, MAX_HISTORY_ASSETS + 1)
            if not page.items:
                raise NotFound(f"no asset with symbol {symbol.upper()}")
            found |= {asset.id: asset.symbol for asset in page.items}
    if len(found) > MAX_HISTORY_ASSETS:
        raise InvalidQuery(f"a history names at most {MAX_HISTORY_ASSETS} assets; these name {len(found)}")
    return dict(sorted(found.items()))


def asset_history(uow_factory: CatalogUnits, assets: Mapping[int, str], query: HistoryQuery) -> HistoryPage:
    """One page of the assets' candles (`query.limit` of them at most, whole buckets), oldest
    first; `next_start` is where the next page starts (the same query with that start)."""
    ids = list(assets)
    with uow_factory() as uow:
        if query.limit is None:
            return HistoryPage(tuple(uow.assets.history(ids, query)), None, assets)
        candles, next_start = history_page(
            uow.assets.history(ids, attrs.evolve(query, limit=query.limit + 1)), query.limit
        )
        if not candles and next_start is not None:  # one bucket holds more than a page: it whole
            whole = attrs.evolve(
                query, start=next_start, end=next_start + query.interval.step - RESOLUTION, limit=None
            )
            candles = uow.assets.history(ids, whole)
            following = next_start + query.interval.step
            after = attrs.evolve(query, start=following, limit=1)
            more = (query.end is None or following <= query.end) and uow.assets.history(ids, after)
            next_start = following if more else None
    return HistoryPage(tuple(candles), next_start, assets)


def rendered_history(
    renderer: HistoryRenderer, assets: Mapping[int, str], query: HistoryQuery
) -> RenderedHistory | None:
    """A page of `asset_history` rendered by the store itself (the same candles, the same
    `next_start`), or None where only `asset_history` pages it (a bucket larger than a page)."""
    return renderer.page_json(list(assets), query)


def export_history(
    uow_factory: CatalogUnits, assets: Mapping[int, str], query: HistoryQuery, batch: int = 5000
) -> Iterator[Candle]:
    """Every candle of the assets over the query's range, a page at a time (by `next_start`),
    so an export of any length holds one page."""
    page_query = attrs.evolve(query, limit=batch)
    while True:
        page = asset_history(uow_factory, assets, page_query)
        yield from page.candles
        if page.next_start is None:
            return
        page_query = attrs.evolve(page_query, start=page.next_start)


@attrs.frozen
class Coverage:
    """An asset's coverage at an interval over a range: per source, covered ranges and gaps."""

    asset: Asset
    interval: Interval
    start: datetime | None
    end: datetime | None
    sources: tuple[SourceCoverage, ...]


def asset_coverage(
    uow_factory: CatalogUnits,
    reader: CoverageReader,
    asset_id: int,
    interval: Interval,
    source: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    empties: ConfirmedEmpty | None = None,
) -> Coverage:
    """Per source: the covered ranges, and the expected buckets missing between them and from
    `start` (to `end`, when given); for a provider's history at this interval (`coingecko:1d`),
    the ranges the provider confirmed empty, which are not missing."""
    with uow_factory() as uow:
        asset = uow.assets.get(asset_id)
    if asset is None:
        raise NotFound(f"no asset with id {asset_id}")
    step = interval.step
    found = reader.covered(asset_id, interval, source, start, end)
    if source is not None and source not in found:
        found[source] = []  # asked for and holding nothing: all of the range is a gap
    sources = []
    for name, spans in sorted(found.items()):
        gaps = gaps_between(spans, step, start, end)
        kind, _, suffix = name.partition(":")
        empty: tuple[Span, ...] = ()
        if empties is not None and suffix == interval.value:
            empty = tuple(
                span
                for span in empties.empty_ranges(asset_id, kind, interval)
                if (end is None or span.start <= end) and (start is None or span.end > start)
            )
            gaps = less_empty(gaps, empty, step)
        sources.append(SourceCoverage(name, tuple(spans), gaps, empty))
    return Coverage(asset, interval, start, end, tuple(sources))
