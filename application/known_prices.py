"""A file's prices (or a provider's history window's) against what the database already knows of
the same assets near the same times: a file far off the other sources is refused whole with the
figures (another coin, another currency); a single bar far off is stored, marked `suspect` with
the figure."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime

from application.ports import IngestUnit
from domain.plausibility import FILE_REMEDY, HISTORY_REMEDY, Bounds, file_refusal, marked_suspect
from domain.records import SourceType, UnifiedRecord, is_snapshot_source

# a bar's own length, but at least an hour: a minute's close compared with others' last price
# within the hour moves far less than the bounds allow
SHORTEST_WINDOW = 3600
DAY = 86400


def compared_with_known(
    records: list[UnifiedRecord],
    uow: IngestUnit,
    source: str,
    others: MutableMapping[int, tuple[str, ...]],
    bounds: Bounds,
) -> tuple[list[UnifiedRecord], str | None]:
    """`records` with the suspect ones marked, and why the file is refused (None: it is not).

    `others` remembers each asset's other sources across a source's batches: asked once per
    asset and run, so a file of one asset asks once, and a file no other source knows costs one
    cheap query a batch at most."""
    priced = [
        (record, record.asset_id, record.observed_at)
        for record in records
        # a file, or a provider's history (`coingecko:1d`): never a provider's snapshot of now
        if (record.source_type is SourceType.CSV or not is_snapshot_source(record.source))
        and record.asset_id is not None
        and record.price_usd is not None
        and record.observed_at is not None
    ]
    if not priced:
        return records, None
    knows_other_sources(sorted({asset_id for _, asset_id, _ in priced}), uow, source, others)
    keyed: dict[int, tuple[int, datetime, int]] = {
        id(record): (asset_id, moment, bar_window(record.bar_seconds))
        for record, asset_id, moment in priced
        if others.get(asset_id)
    }
    if not keyed:
        return records, None
    references = uow.rates.reference_prices(
        sorted(set(keyed.values())), {asset_id: others[asset_id] for asset_id, _, _ in keyed.values()}
    )
    compared = [
        (record, references[keyed[id(record)]])
        for record, _, _ in priced
        if id(record) in keyed and keyed[id(record)] in references
    ]
    remedy = FILE_REMEDY if is_snapshot_source(source) or source.startswith("csv:") else HISTORY_REMEDY
    refusal = file_refusal(compared, bounds, remedy)
    if refusal is not None:
        return records, refusal
    marked = {id(record): marked_suspect(record, reference, bounds) for record, reference in compared}
    return [marked.get(id(record), record) for record in records], None


def knows_other_sources(
    asset_ids: Sequence[int], uow: IngestUnit, source: str, others: MutableMapping[int, tuple[str, ...]]
) -> bool:
    """Whether any other source holds prices of these assets; `others` learns each asset's other
    sources (asked once per asset and run)."""
    unknown = [asset_id for asset_id in asset_ids if asset_id not in others]
    if unknown:
        found = uow.rates.other_sources(unknown, source)
        for asset_id in unknown:
            others[asset_id] = found.get(asset_id, ())
    return any(others[asset_id] for asset_id in asset_ids)


def bar_window(bar_seconds: int | None) -> int:
    """How long after a bar's start other sources' prices are its references."""
    return max(bar_seconds or DAY, SHORTEST_WINDOW)


def any_reference(
    bars: Sequence[tuple[int, datetime, int | None]], uow: IngestUnit, others: Mapping[int, tuple[str, ...]]
) -> bool:
    """Whether other sources priced any of these bars (asset, start, length) within it: what
    `compared_with_known` would compare them with."""
    keys = sorted(
        {
            (asset_id, moment, bar_window(seconds))
            for asset_id, moment, seconds in bars
            if others.get(asset_id)
        }
    )
    if not keys:
        return False
    return bool(uow.rates.reference_prices(keys, {asset_id: others[asset_id] for asset_id, _, _ in keys}))
