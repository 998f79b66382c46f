"""How CSV headers map to unified fields: names exports really use, matched case-insensitively."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from domain.drift import Contract, FieldSpec

ALIASES: Mapping[str, tuple[str, ...]] = {
    "observed_at": ("date", "timestamp", "time", "datetime", "day", "snapped_at", "date_utc"),
    "symbol": ("symbol", "ticker", "coin", "asset_symbol", "code"),
    "asset_name": ("name", "asset", "asset_name", "coin_name", "currency_name"),
    "open": ("open", "open_usd", "opening_price", "open_price"),
    "high": ("high", "high_usd", "high_price"),
    "low": ("low", "low_usd", "low_price"),
    "close": ("close", "close_usd", "price", "price_usd", "closing_price", "close_price"),
    "volume": ("volume", "volume_usd", "volume_24h", "total_volume", "vol"),
    "market_cap": ("market_cap", "marketcap", "market_cap_usd", "mkt_cap", "mcap"),
}
_BY_ALIAS = {alias: field for field, aliases in ALIASES.items() for alias in (field, *aliases)}


def header_key(name: str) -> str:
    """`"Close (USD)"` → `close_usd`; `"Market Cap"` → `market_cap`."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def map_header(header: Sequence[str]) -> dict[str, str]:
    """Map each unified field to the header column that carries it (first match wins)."""
    mapping: dict[str, str] = {}
    for column in header:
        field = _BY_ALIAS.get(header_key(column))
        if field is not None and field not in mapping:
            mapping[field] = column
    return mapping


def unique_header(cells: Sequence[str]) -> list[str]:
    """Strip names and suffix repeats (`price`, `price_2`) so no column overwrites another."""
    seen: dict[str, int] = {}
    names = []
    for index, cell in enumerate(cells):
        name = cell.strip() or f"column_{index + 1}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def canonical_column(name: str) -> str:
    """The unified field a header names (`Close (USD)` → `close`), or the header itself."""
    return _BY_ALIAS.get(header_key(name), name)


# what a market-history CSV promises: every cell is text, so only names and presence are checked
CSV_CONTRACT = Contract(
    fields=(
        FieldSpec("observed_at", required=True),
        FieldSpec("symbol", required=True),
        FieldSpec("asset_name"),
        FieldSpec("open"),
        FieldSpec("high"),
        FieldSpec("low"),
        FieldSpec("close", required=True),
        FieldSpec("volume"),
        FieldSpec("market_cap"),
    ),
    canonical=canonical_column,
)
