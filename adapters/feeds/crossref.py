"""The curated cross-reference of the top coins: `data/reference/asset_crossref.csv`."""

from __future__ import annotations

import csv
from pathlib import Path

from domain.assets import CrossReference

PROVIDER_COLUMNS = {"coingecko_id": "coingecko", "coinpaprika_id": "coinpaprika"}


def load_crossref(path: Path) -> tuple[CrossReference, ...]:
    """One entry per row: symbol, name, and each provider's id; a missing file is an empty list."""
    if not path.exists():
        return ()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return tuple(
            CrossReference(
                symbol=row["symbol"].strip().upper(),
                name=row["name"].strip(),
                ids={
                    source: row[column].strip()
                    for column, source in PROVIDER_COLUMNS.items()
                    if row.get(column)
                },
            )
            for row in csv.DictReader(handle)
            if row.get("symbol")
        )
