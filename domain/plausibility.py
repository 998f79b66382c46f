"""What a stored number or time may be: bounds no real asset or observation falls outside.

A value past them is a provider's or a file's mistake (a price of 1 followed by 400 zeros, a
`last_updated` in the year 9999, `1e-400` underflowing to nothing): the record is quarantined
with the figure and the bound, never stored. The bounds are settings (README, configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs

from domain.records import RecordKind, UnifiedRecord

GENESIS = datetime(2009, 1, 3, tzinfo=UTC)  # the first Bitcoin block: no crypto price before it
OLDEST_ARTICLE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)  # clocks and time zones: up to a day ahead is a time, not a mistake


@attrs.frozen
class Bounds:
    max_price_usd: Decimal = Decimal("1e12")  # no unit of any asset is worth a trillion dollars
    min_price_usd: Decimal = Decimal("1e-18")  # a positive price below this is an underflow
    max_market_cap_usd: Decimal = Decimal("1e15")  # ten times the world's yearly output
    max_volume_usd: Decimal = Decimal("1e16")
    # against what other sources observed: a file off by more than this (median) is another coin
    # or another currency; a single bar off by more than `bar_deviation` is stored as suspect
    file_deviation: Decimal = Decimal("0.5")
    bar_deviation: Decimal = Decimal("0.25")
    # a file is judged whole only on this many bars compared, or more: fewer are single bars,
    # each marked suspect when far off, never a verdict on the file
    file_evidence: int = 5


@attrs.frozen
class Reference:
    """What other sources observed of an asset within a bar: the median of their USD prices."""

    price_usd: Decimal
    sources: tuple[str, ...]


def deviation(price: Decimal, reference: Reference) -> Decimal:
    """How far `price` is from the reference, as a share (−0.94: 94 % below)."""
    return price / reference.price_usd - 1


FILE_REMEDY = "set symbol (or quote) for this file in csv_options.toml"
# a provider's history far off: the provider's id names another coin than the asset
HISTORY_REMEDY = "the provider's id of this asset may name another coin (see its aliases on /assets/{id})"


def file_refusal(
    compared: list[tuple[UnifiedRecord, Reference]], bounds: Bounds, remedy: str = FILE_REMEDY
) -> str | None:
    """Why a file's prices cannot be what it says (for an asset with `file_evidence` bars or more
    compared, the median of their deviations from the other sources beyond `file_deviation`),
    with the figures; None when they agree. Each asset of a file is judged on its own bars."""
    by_asset: dict[int | None, list[tuple[UnifiedRecord, Reference]]] = {}
    for record, reference in compared:
        if reference.price_usd > 0 and record.price_usd:
            by_asset.setdefault(record.asset_id, []).append((record, reference))
    for usable in by_asset.values():
        if len(usable) < bounds.file_evidence:
            continue
        shares = sorted(deviation(record.price_usd, reference) for record, reference in usable)  # type: ignore[arg-type]
        median = shares[len(shares) // 2]
        if abs(median) <= bounds.file_deviation:
            continue
        symbol = usable[0][0].symbol or "?"
        sources = sorted({source for _, reference in usable for source in reference.sources})
        return (
            f"prices differ from {len(sources)} other source{'s' if len(sources) != 1 else ''} of {symbol} "
            f"({', '.join(sources)}) by {median * 100:+.0f} % (median of {len(usable):,} bars): a different coin "
            f"or currency? {remedy} (PLAUSIBLE_FILE_DEVIATION allows more)"
        )
    return None


SUSPECT_MARK = "suspect"  # the key of `extra` a bar far off the others is marked with


def marked_suspect(record: UnifiedRecord, reference: Reference, bounds: Bounds) -> UnifiedRecord:
    """`record`, marked `suspect` in `extra` with the figure when it is far off the others."""
    if record.price_usd is None or reference.price_usd <= 0:
        return record
    share = deviation(record.price_usd, reference)
    if abs(share) <= bounds.bar_deviation:
        return record
    extra = dict(record.extra)
    extra[SUSPECT_MARK] = {
        "deviation_pct": str(round(share * 100, 2)),
        "reference_usd": str(reference.price_usd),
        "sources": list(reference.sources),
    }
    return attrs.evolve(record, extra=extra)


def implausible(record: UnifiedRecord, now: datetime, bounds: Bounds) -> str | None:
    """Why `record` cannot be true (a reason naming the field, its value and the bound), or None."""
    moment = record.observed_at if record.kind is RecordKind.MARKET else record.published_at
    oldest = GENESIS if record.kind is RecordKind.MARKET else OLDEST_ARTICLE
    field = "observed_at" if record.kind is RecordKind.MARKET else "published_at"
    if moment is not None and not oldest <= moment <= now + FUTURE_SLACK:
        return f"{field}: {moment.isoformat()} is outside {oldest.date()} … tomorrow: not a time this data can have"
    price_bound = (bounds.max_price_usd, "PLAUSIBLE_MAX_PRICE_USD")
    for name, value, (top, setting) in (
        ("price_usd", record.price_usd, price_bound),
        ("open_usd", record.open_usd, price_bound),
        ("high_usd", record.high_usd, price_bound),
        ("low_usd", record.low_usd, price_bound),
        (
            "market_cap_usd",
            record.market_cap_usd,
            (bounds.max_market_cap_usd, "PLAUSIBLE_MAX_MARKET_CAP_USD"),
        ),
        ("volume_24h_usd", record.volume_24h_usd, (bounds.max_volume_usd, "PLAUSIBLE_MAX_VOLUME_USD")),
    ):
        if value is None:
            continue
        if not value.is_finite():
            return f"{name}: {value} is not a finite number"
        if value > top:
            return f"{name}: {_short(value)} USD is above {_short(top)}, more than any asset can have ({setting})"
        if setting == price_bound[1] and 0 < value < bounds.min_price_usd:
            return (
                f"{name}: {_short(value)} USD is below {_short(bounds.min_price_usd)}: an underflow, not a price "
                "(PLAUSIBLE_MIN_PRICE_USD)"
            )
    if record.price is not None and not record.price.is_finite():
        return f"price: {record.price} is not a finite number"
    return None


def _short(value: Decimal) -> str:
    """A figure a person can read: 401 digits are shown as 1E+400."""
    text = str(value)
    return f"{value:.6E}".replace(".000000", "") if len(text) > 24 else text


def bar_out_of_range(open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> str | None:
    """Why a bar cannot be one (its open or close outside its low and high), or None."""
    if low <= min(open_, close) <= max(open_, close) <= high:
        return None
    return f"open {open_} and close {close} must lie within low {low} and high {high}"


@attrs.frozen
class BarRanges:
    """What a block of market records spans, as plausibility judges it: the oldest and newest
    observation, and for each USD figure (`price_usd`, `open_usd`, …, named as the record's
    fields) its largest value and its smallest value above zero."""

    oldest: datetime
    newest: datetime
    largest: Mapping[str, Decimal] = attrs.Factory(dict)
    smallest_positive: Mapping[str, Decimal] = attrs.Factory(dict)


_PRICES = ("price_usd", "open_usd", "high_usd", "low_usd")


def ranges_plausible(ranges: BarRanges, now: datetime, bounds: Bounds) -> bool:
    """Whether every market record within `ranges` passes `implausible`: its time between the
    first block and tomorrow, no figure above its bound, no price between zero and the
    underflow bound (each figure finite: a block holds exact decimals only)."""
    if not GENESIS <= ranges.oldest <= ranges.newest <= now + FUTURE_SLACK:
        return False
    tops = {
        **dict.fromkeys(_PRICES, bounds.max_price_usd),
        "market_cap_usd": bounds.max_market_cap_usd,
        "volume_24h_usd": bounds.max_volume_usd,
    }
    if any(name not in tops or value > tops[name] for name, value in ranges.largest.items()):
        return False
    return all(
        name not in _PRICES or value >= bounds.min_price_usd
        for name, value in ranges.smallest_positive.items()
    )
