"""Canonical assets: market records get theirs as they load; `/assets` reads them back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import attrs

from application.errors import NotFound
from application.ports import UnitOfWork, UnitOfWorkFactory
from application.queries import Page
from domain.assets import (
    Alias,
    Asset,
    AssetView,
    Candidate,
    Candle,
    CrossReference,
    HistoryQuery,
    Method,
    resolve,
)
from domain.records import RecordKind, SourceType, UnifiedRecord


def source_asset_id(record: UnifiedRecord) -> str:
    """How a source names the asset of a record: an API's coin id, a file's symbol."""
    return record.source_record_id if record.source_type is SourceType.API else (record.symbol or "")


def assign_assets(
    records: list[UnifiedRecord], uow: UnitOfWork, crossref: Sequence[CrossReference]
) -> list[UnifiedRecord]:
    """Each market record with the id of its canonical asset; new assets and aliases stored."""
    markets = [record for record in records if record.kind is RecordKind.MARKET and record.symbol]
    if not markets:
        return records
    candidates = {
        (record.source, source_asset_id(record)): Candidate(
            record.source, source_asset_id(record), record.symbol or "", record.asset_name, record.rank
        )
        for record in markets
    }
    known = uow.assets.aliases(list(candidates))
    unknown = [candidate for key, candidate in candidates.items() if key not in known]
    if unknown:
        known |= _resolve_and_store(unknown, uow, crossref)
    return [
        attrs.evolve(record, asset_id=known[(record.source, source_asset_id(record))])
        if record.kind is RecordKind.MARKET and record.symbol
        else record
        for record in records
    ]


def _resolve_and_store(
    unknown: list[Candidate], uow: UnitOfWork, crossref: Sequence[CrossReference]
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
    uow_factory: UnitOfWorkFactory, symbol: str | None, search: str | None, page: int, page_size: int
) -> Page[Asset]:
    with uow_factory() as uow:
        return uow.assets.find(symbol.upper() if symbol else None, search, page, page_size)


def asset_view(uow_factory: UnitOfWorkFactory, asset_id: int, window: timedelta | None = None) -> AssetView:
    """An asset, its aliases, each source's latest price, and the consensus of the prices
    observed within `window` of the newest."""
    with uow_factory() as uow:
        asset = uow.assets.get(asset_id)
        if asset is None:
            raise NotFound(f"no asset with id {asset_id}")
        return AssetView(
            asset, tuple(uow.assets.aliases_of(asset_id)), tuple(uow.assets.latest_quotes(asset_id)), window
        )


def asset_history(uow_factory: UnitOfWorkFactory, asset_id: int, query: HistoryQuery) -> list[Candle]:
    with uow_factory() as uow:
        if uow.assets.get(asset_id) is None:
            raise NotFound(f"no asset with id {asset_id}")
        return uow.assets.history(asset_id, query)
