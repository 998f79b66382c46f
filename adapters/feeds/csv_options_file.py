"""Per-file options for price files: `csv_options.toml`, tables keyed by a glob of file names.

    ["Bitcoin_*_coinmarketcap.csv"]
    symbol = "BTC"

    ["exports/*.csv"]          # a key with a "/" is matched against the file's path
    delimiter = ";"
    decimal = ","
    date_order = "dmy"
    timezone = "Europe/Berlin"

Every table whose glob matches a file applies, later tables overriding earlier ones. An unknown
option or a value Kaspero cannot use is an error naming the table and the option.
"""

from __future__ import annotations

import fnmatch
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from domain.csv_cells import DateOrder, DecimalMark
from domain.csv_layout import INTERVALS
from domain.csv_options import FileOptions

KNOWN = (
    "symbol",
    "name",
    "quote",
    "delimiter",
    "decimal",
    "date_order",
    "timezone",
    "interval",
    "skip_lines",
    "time_column",
    "volume",
)


class CsvOptionsError(ValueError):
    """The options file cannot be used; the message names the file, the table and the option."""


@attrs.frozen
class CsvOptionsFile:
    """The parsed file: (glob, options given) in file order."""

    path: Path | None = None
    tables: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    def for_file(self, path: Path) -> FileOptions:
        merged: dict[str, Any] = {}
        for pattern, values in self.tables:
            target = str(path) if "/" in pattern else path.name
            if fnmatch.fnmatch(target, pattern) or fnmatch.fnmatch(path.as_posix(), pattern):
                merged.update(values)
        return FileOptions(**merged)


def load_csv_options(path: Path | None) -> CsvOptionsFile:
    """The options in `path`; none when the file does not exist (it is optional)."""
    if path is None or not path.exists():
        return CsvOptionsFile(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as ex:
        raise CsvOptionsError(f"{path}: not valid TOML: {ex}") from None
    tables = []
    for pattern, values in document.items():
        if not isinstance(values, dict):
            raise CsvOptionsError(
                f'{path}: {pattern!r} must be a table (["{pattern}"] followed by its options)'
            )
        tables.append((pattern, _checked(path, pattern, values)))
    return CsvOptionsFile(path, tuple(tables))


def _checked(path: Path, pattern: str, values: Mapping[str, Any]) -> dict[str, Any]:
    where = f"{path}: [{pattern!r}]"
    unknown = sorted(set(values) - set(KNOWN))
    if unknown:
        raise CsvOptionsError(f"{where}: unknown option {', '.join(unknown)} (known: {', '.join(KNOWN)})")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key == "skip_lines":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CsvOptionsError(f"{where}: skip_lines must be a whole number ≥ 0, got {value!r}")
            checked[key] = value
            continue
        if not isinstance(value, str) or not value.strip():
            raise CsvOptionsError(f"{where}: {key} must be a non-empty string, got {value!r}")
        text = value if key == "delimiter" else value.strip()
        if key == "delimiter":
            text = {"tab": "\t", "\\t": "\t"}.get(text, text)
            if len(text) != 1:
                raise CsvOptionsError(f'{where}: delimiter must be one character (or "tab"), got {value!r}')
            checked[key] = text
        elif key == "decimal":
            if text not in (".", ","):
                raise CsvOptionsError(f'{where}: decimal must be "." or ",", got {value!r}')
            checked[key] = DecimalMark(text)
        elif key == "date_order":
            if text.lower() not in ("dmy", "mdy"):
                raise CsvOptionsError(f'{where}: date_order must be "dmy" or "mdy", got {value!r}')
            checked[key] = DateOrder(text.lower())
        elif key == "timezone":
            try:
                checked[key] = zoneinfo.ZoneInfo(text)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise CsvOptionsError(
                    f"{where}: unknown timezone {value!r} (e.g. UTC, Europe/Berlin)"
                ) from None
            checked["timezone_name"] = text
        elif key == "volume":
            if text.lower() not in ("base", "quote", "usd"):
                raise CsvOptionsError(f'{where}: volume must be "base", "quote" or "usd", got {value!r}')
            checked[key] = text.lower()
        elif key == "interval":
            if text not in INTERVALS:
                raise CsvOptionsError(
                    f"{where}: interval must be one of {', '.join(INTERVALS)}, got {value!r}"
                )
            checked[key] = text
        else:
            checked[key] = text
    return checked
