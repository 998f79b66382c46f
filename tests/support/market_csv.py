"""Deterministic market-history CSV files for tests and benchmarks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

HEADER = "date,symbol,name,open,high,low,close,volume,market_cap"
ASSETS = (("BTC", "Bitcoin", 42000.0), ("ETH", "Ethereum", 2300.0), ("SOL", "Solana", 100.0))


LAST_DAY = date(2025, 12, 31)  # daily bars end in the past: Kaspero refuses prices from the future


def market_lines(
    days: int, start: date = date(2023, 1, 1), seed: int = 1, assets: int = 3, first: int = 0
) -> Iterator[str]:
    """`days` × `assets` clean rows, one per asset per day; the same arguments give the same lines.

    The days must end by LAST_DAY (real prices are never dated in the future): many rows are
    many assets, not a century of days. `first` numbers the assets from further on (BTC7,
    ETH7, …): files of other assets."""
    if start + timedelta(days=days - 1) > LAST_DAY:
        raise ValueError(
            f"{days:,} days from {start} end after {LAST_DAY}: ask for more assets and fewer days"
        )
    rng = random.Random(seed)
    chosen = [
        (f"{s}{n}" if n else s, name, price)
        for n in range(first, first + 1 + assets // 3)
        for s, name, price in ASSETS
    ]
    chosen = chosen[:assets]
    prices = {symbol: price for symbol, _, price in chosen}
    for offset in range(days):
        day = (start + timedelta(days=offset)).isoformat()
        for symbol, name, _ in chosen:
            open_ = prices[symbol]
            close = round(open_ * (1 + rng.uniform(-0.03, 0.03)), 2)
            prices[symbol] = close
            high, low = max(open_, close) * 1.01, min(open_, close) * 0.99
            yield f"{day},{symbol},{name},{open_:.2f},{high:.2f},{low:.2f},{close:.2f},{rng.randint(10**6, 10**9)},"


def write_csv(path: Path, lines: list[str], *, bom: bool = False, newline: str = "\n") -> Path:
    text = newline.join([HEADER, *lines]) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def append_lines(path: Path, lines: list[str], newline: str = "\n") -> None:
    with path.open("ab") as handle:
        handle.write((newline.join(lines) + newline).encode("utf-8"))
