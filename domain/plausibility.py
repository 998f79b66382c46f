"""What a stored number or time may be: bounds no real asset or observation falls outside.

A value past them is a provider's or a file's mistake (a price of 1 followed by 400 zeros, a
`last_updated` in the year 9999, `1e-400` underflowing to nothing): the record is quarantined
with the figure and the bound, never stored. The bounds are settings (README, configuration).
"""

from __future__ import annotations

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
