"""Which assets a piece of news mentions: by name, or by symbol written as a symbol.

Names match case-insensitively on word boundaries ("Bitcoin", "bitcoin's"); symbols match only
in capitals and standing alone ("ETH" and "$ETH", never "ETHICS" or "eth" in a word), because
many symbols are ordinary words in lower case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import attrs


@attrs.frozen
class KnownAsset:
    symbol: str
    name: str | None = None


@attrs.frozen
class MentionFinder:
    """Compiled once per batch of news for the assets known then."""

    by_name: dict[str, str]
    names: re.Pattern[str] | None
    symbols: re.Pattern[str] | None

    @classmethod
    def of(cls, assets: Sequence[KnownAsset]) -> MentionFinder:
        by_name = {
            asset.name.lower(): asset.symbol for asset in assets if asset.name and len(asset.name) >= 3
        }
        symbols = sorted({asset.symbol for asset in assets if len(asset.symbol) >= 2}, key=len, reverse=True)
        names = sorted(by_name, key=len, reverse=True)
        return cls(
            by_name=by_name,
            names=re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
            if names
            else None,
            symbols=re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, symbols)) + r")(?![A-Za-z0-9])")
            if symbols
            else None,
        )

    def find(self, texts: Iterable[str | None]) -> tuple[str, ...]:
        found: set[str] = set()
        for text in texts:
            if not text:
                continue
            if self.symbols is not None:
                found.update(match.group(1) for match in self.symbols.finditer(text))
            if self.names is not None:
                found.update(self.by_name[match.group(1).lower()] for match in self.names.finditer(text))
        return tuple(sorted(found))
