"""Rules for turning the messy values providers and exports send into typed values.

Each parser returns None for a missing value (empty cell, `N/A`, `null`, `-`) and raises
`InvalidValue` for a value that is present but cannot be read, so the caller can tell
"absent" from "broken" and quarantine only the latter.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.errors import InvalidValue

MISSING_MARKERS = frozenset({"", "n/a", "na", "null", "none", "nan", "-", "--", "—"})

# currency signs, thousands separators and spaces carry no value in a number
_NUMBER_NOISE = ("$", "€", "£", "¥", ",", " ", "_", "\u00a0")
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%m/%d/%Y",
    "%b %d, %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%Y%m%d",
)
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def is_missing(value: object) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_MARKERS


def parse_decimal(value: object) -> Decimal | None:
    """Read a number such as `1234.5`, `"$1,234.50"`, `"(12.5)"`, `"1.2e3"` or `12.5%` exactly."""
    if is_missing(value):
        return None
    if isinstance(value, bool):
        raise InvalidValue(f"expected a number, got a boolean {value!r}")
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidValue(f"not a finite number: {value!r}")
        # repr gives the shortest string that round-trips, so 0.1 stays 0.1, not 0.1000000000000000055
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise InvalidValue(f"expected a number, got {type(value).__name__}")
    if _NUMBER.match(value):  # the common case, a plain number: no cleaning needed
        return Decimal(value)
    text = value.strip()
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    text = text.rstrip("%")
    for noise in _NUMBER_NOISE:
        text = text.replace(noise, "")
    if not _NUMBER.match(text):
        raise InvalidValue(f"not a number: {value!r}")
    try:
        number = Decimal(text)
    except InvalidOperation as ex:  # pragma: no cover - the pattern admits only valid literals
        raise InvalidValue(f"not a number: {value!r}") from ex
    return -number if negative else number


def parse_int(value: object) -> int | None:
    number = parse_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise InvalidValue(f"expected a whole number, got {value!r}")
    return int(number)


def parse_timestamp(value: object) -> datetime | None:
    """Read a date or a date-time in the formats exports use; naive values are taken as UTC."""
    if is_missing(value):
        return None
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(float(value), value)
    if not isinstance(value, str):
        raise InvalidValue(f"expected a date, got {type(value).__name__}")
    return _parse_timestamp_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_timestamp_text(value: str) -> datetime:
    """Remembered: an export repeats each date once per asset (datetimes are immutable)."""
    text = value.strip()
    if text.isdigit() and len(text) >= 9:
        return _from_epoch(float(text), value)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return _as_utc(datetime.fromisoformat(iso))
    except ValueError:
        pass
    for fmt in _DATETIME_FORMATS + _DATE_FORMATS:
        try:
            return _as_utc(datetime.strptime(text, fmt))
        except ValueError:
            continue
    raise InvalidValue(f"not a recognised date: {value!r}")


def _from_epoch(seconds: float, original: object) -> datetime:
    if seconds > 1e11:  # milliseconds since the epoch
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as ex:
        raise InvalidValue(f"not a recognised date: {original!r}") from ex


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def clean_text(value: object) -> str | None:
    if is_missing(value):
        return None
    text = str(value).strip()
    return " ".join(text.split()) or None


NUL = "\x00"
NUL_REASON = "contains a NUL character (U+0000), which cannot be stored; kept with U+FFFD in its place"


def replace_nul(value: Any) -> Any:
    """`value` with U+0000 replaced by U+FFFD in every string and key, however deep.

    PostgreSQL's text and jsonb cannot hold U+0000, so a payload carrying one can be kept only
    altered; readers quarantine such a record with `NUL_REASON` rather than load it.
    """
    if isinstance(value, str):
        return value.replace(NUL, "\ufffd")
    if isinstance(value, dict):
        return {replace_nul(key): replace_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_nul(item) for item in value]
    return value
