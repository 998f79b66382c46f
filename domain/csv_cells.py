"""Reading the cells of a price file's columns: numbers with either decimal mark, and moments in
the forms exports use, each decided once per column from the column's own values.

A column's decimal mark and a column's day/month order are facts about the file, never guesses
about one cell: `1,5` is one and a half in a column that also holds `2,25`, and `1,500` is
fifteen hundred only in a column that shows a comma grouping thousands elsewhere
(`1,234.50`). A value whose meaning the column does not settle is refused with the reason,
never misread.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation

import attrs

from domain.cleaning import MISSING_MARKERS
from domain.errors import InvalidValue

_PLAIN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_SIGNS = "$€£¥₿\u00a0 "
_DOT_GROUPED = re.compile(r"^\d{1,3}(\.\d{3})+$")
_COMMA_GROUPED = re.compile(r"^\d{1,3}(,\d{3})+$")
_DOT_DECIMAL_COMMA_GROUPS = re.compile(r"^\d{1,3}(,\d{3})*\.\d+$")
_COMMA_DECIMAL_DOT_GROUPS = re.compile(r"^\d{1,3}(\.\d{3})*,\d+$")
_DIGITS_SEPARATOR_DIGITS = re.compile(r"^\d+([.,])\d+$")


class DecimalMark(enum.StrEnum):
    DOT = "."
    COMMA = ","


def _unsigned(text: str) -> tuple[str, bool]:
    """The digits and separators of a number cell, and whether it was negative."""
    body = text.strip().strip(_SIGNS)
    negative = False
    if body.startswith("(") and body.endswith(")"):
        body, negative = body[1:-1].strip(_SIGNS), True
    if body.startswith(("-", "+")):
        negative, body = body.startswith("-"), body[1:].strip(_SIGNS)
    return body.rstrip("%").replace(" ", "").replace("\u00a0", "").replace("'", ""), negative


# Investing.com writes volumes as `1.38M`, `0.22K`, `1.06B`: a magnitude after the digits
_MAGNITUDE = re.compile(r"^(.*\d)\s*([KMB])$", re.I)
_MAGNITUDES = {"K": Decimal(1000), "M": Decimal(1_000_000), "B": Decimal(1_000_000_000)}


def _magnitude(text: str) -> tuple[str, Decimal | None]:
    matched = _MAGNITUDE.match(text.strip())
    if matched is None:
        return text, None
    return matched.group(1), _MAGNITUDES[matched.group(2).upper()]


def marks_allowed(text: str) -> frozenset[DecimalMark] | None:
    """The decimal marks under which `text` reads as a number; None when it is no number at all."""
    body, _ = _unsigned(_magnitude(text)[0])
    if _PLAIN.match(body) and "." not in body:
        return frozenset(DecimalMark)  # an integer (or exponent form): either mark reads it
    if "," not in body:
        # `1.5` is only a dot decimal; `1.500` also reads as 1500 with a dot grouping thousands
        if _DOT_GROUPED.match(body):
            return frozenset(DecimalMark) if body.count(".") == 1 else frozenset({DecimalMark.COMMA})
        return frozenset({DecimalMark.DOT}) if _PLAIN.match(body) else None
    if "." not in body:
        if _COMMA_GROUPED.match(body):
            single = _DIGITS_SEPARATOR_DIGITS.match(body)
            return frozenset(DecimalMark) if single else frozenset({DecimalMark.DOT})
        return frozenset({DecimalMark.COMMA}) if _DIGITS_SEPARATOR_DIGITS.match(body) else None
    if _DOT_DECIMAL_COMMA_GROUPS.match(body):
        return frozenset({DecimalMark.DOT})
    if _COMMA_DECIMAL_DOT_GROUPS.match(body):
        return frozenset({DecimalMark.COMMA})
    return None


def is_missing_cell(text: str) -> bool:
    return text.strip().lower() in MISSING_MARKERS


def decide_mark(values: Iterable[str]) -> tuple[DecimalMark | None, bool]:
    """The column's decimal mark from its values, and whether the column holds numbers at all.

    None when the values allow either mark (integers only, or `1,500` alone)."""
    allowed = set(DecimalMark)
    numbers = 0
    for value in values:
        if is_missing_cell(value):
            continue
        marks = marks_allowed(value)
        if marks is None:
            return None, False
        numbers += 1
        allowed &= marks
    if not numbers or len(allowed) != 1:
        return None, numbers > 0
    return allowed.pop(), True


def read_number(text: str, mark: DecimalMark | None) -> Decimal | None:
    """The exact value of a cell in a column whose decimal mark is `mark` (None: not settled)."""
    if _PLAIN.match(text) and (mark is not DecimalMark.COMMA or "." not in text):
        return Decimal(text)  # the common case first: a plain number
    if is_missing_cell(text):
        return None
    text, magnitude = _magnitude(text)
    if magnitude is not None:
        number = read_number(text, mark)
        return None if number is None else number * magnitude
    body, negative = _unsigned(text)
    marks = marks_allowed(text)
    if marks is None:
        raise InvalidValue(f"not a number: {text!r}")
    chosen = mark if mark is not None else (next(iter(marks)) if len(marks) == 1 else None)
    if chosen is None and _PLAIN.match(body):
        chosen = DecimalMark.DOT  # digits alone, or digits and an exponent
    if chosen is None:
        raise InvalidValue(
            f"ambiguous number {text!r}: the comma or dot may group thousands or mark decimals, and "
            "nothing else in its column says which; set decimal for this file in csv_options.toml"
        )
    if chosen not in marks:
        raise InvalidValue(f"not a number with {chosen.value!r} as the decimal mark: {text!r}")
    body = body.replace(".", "").replace(",", ".") if chosen is DecimalMark.COMMA else body.replace(",", "")
    try:
        number = Decimal(body)
    except InvalidOperation as ex:  # pragma: no cover - the patterns admit only valid literals
        raise InvalidValue(f"not a number: {text!r}") from ex
    return -number if negative else number


class DateOrder(enum.StrEnum):
    DMY = "dmy"
    MDY = "mdy"


class MomentForm(enum.StrEnum):
    EPOCH = "unix time (seconds, milliseconds or microseconds, by magnitude)"
    ISO = "ISO 8601 (YYYY-MM-DD, optional time, offset, Z or UTC)"
    NUMERIC = "day and month as numbers (DD/MM/YYYY or MM/DD/YYYY)"
    MONTH_NAME = "month names (Jan 02, 2024 / 02 Jan 2024)"
    COMPACT = "YYYYMMDD"


_EPOCH = re.compile(r"^\d{9,19}(\.\d+)?$")
_ISO = re.compile(
    r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?$",
    re.I,
)
_NUMERIC = re.compile(
    r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$"
)
_COMPACT = re.compile(r"^\d{8}$")
_MONTH_FORMATS = ("%b %d, %Y", "%d %b %Y", "%B %d, %Y", "%d %B %Y", "%b %d %Y", "%d-%b-%Y", "%d-%b-%y")

# a moment after this in seconds is in milliseconds, and so on: any date from 1973 to 5138 reads right
_SECONDS_BELOW = 10**11
_MILLIS_BELOW = 10**14
_MICROS_BELOW = 10**17


def moment_form(value: str) -> MomentForm | None:
    text = value.strip()
    if _EPOCH.match(text):
        return MomentForm.EPOCH
    if _COMPACT.match(text):
        return MomentForm.COMPACT
    if _ISO.match(text):
        return MomentForm.ISO
    if _NUMERIC.match(text):
        return MomentForm.NUMERIC
    if _month_name(text) is not None:
        return MomentForm.MONTH_NAME
    return None


@attrs.frozen
class OrderEvidence:
    """What a column of numeric dates says about its day/month order, per separator: a file may
    write `01/13/2024` and `13.01.2024` in one column (American and European styles)."""

    # separator -> (a first number above 12 was seen, a second number above 12 was seen)
    seen: Mapping[str, tuple[bool, bool]] = attrs.field(factory=dict)

    def seeing(self, value: str) -> OrderEvidence:
        match = _NUMERIC.match(value.strip())
        if match is None:
            return self
        separator, first, second = match.group(2), int(match.group(1)), int(match.group(3))
        if first > 12 and second > 12:
            return self  # a date in neither order (31/31/2024): its row is refused, it says nothing
        day_first, month_first = self.seen.get(separator, (False, False))
        now = (day_first or first > 12, month_first or second > 12)
        if now == self.seen.get(separator):
            return self
        return OrderEvidence({**self.seen, separator: now})

    @property
    def orders(self) -> dict[str, DateOrder]:
        """The order each separator's dates settled; dotted dates are day-first by convention."""
        settled = {}
        for separator, (day_first, month_first) in self.seen.items():
            if day_first and not month_first:
                settled[separator] = DateOrder.DMY
            elif month_first and not day_first:
                settled[separator] = DateOrder.MDY
            elif separator == "." and not (day_first or month_first):
                settled[separator] = DateOrder.DMY  # 31.12.2024 is day-first wherever it is written
        return settled

    @property
    def open(self) -> tuple[str, ...]:
        """Separators whose dates never showed a number above 12."""
        return tuple(sorted(s for s, (day, month) in self.seen.items() if not (day or month) and s != "."))

    @property
    def contradictory(self) -> tuple[str, ...]:
        return tuple(sorted(s for s, (day, month) in self.seen.items() if day and month))


def order_evidence(values: Iterable[str]) -> OrderEvidence:
    evidence = OrderEvidence()
    for value in values:
        evidence = evidence.seeing(value)
    return evidence


class _Orders(dict[str, DateOrder]):
    """A column's orders by separator, hashable so a reader can key a cache."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _orders(items: Mapping[str, DateOrder]) -> _Orders:
    return _Orders(dict(items))


@attrs.frozen(cache_hash=True)
class MomentReader:
    """Reads one column's moments: its form, its day/month order per separator, the zone of
    naive times."""

    form: MomentForm
    orders: Mapping[str, DateOrder] = attrs.field(factory=dict, converter=_orders)
    zone: tzinfo = UTC
    fixed_order: DateOrder | None = None  # set by the options: every separator reads so

    def read(self, value: str) -> datetime | None:
        """A value in its own form (a column may mix ISO dates and month names, or seconds and
        milliseconds); numeric day/month values by the column's order for their separator.
        Remembered per value: an export repeats each date once per asset."""
        return _read_value(self, value)

    def describe_order(self) -> str | None:
        if self.fixed_order is not None:
            return f"{self.fixed_order.value} (option)"
        if not self.orders:
            return None
        values = set(self.orders.values())
        if len(values) == 1:
            return values.pop().value
        return ", ".join(f"{separator} {order.value}" for separator, order in sorted(self.orders.items()))


@functools.lru_cache(maxsize=16384)
def _read_value(reader: MomentReader, value: str) -> datetime | None:
    """`MomentReader.read`, remembered per reader and value (the reader is frozen and hashable)."""
    if is_missing_cell(value):
        return None
    text = value.strip()
    form = moment_form(text) or reader.form
    order = reader.fixed_order
    if order is None and form is MomentForm.NUMERIC:
        match = _NUMERIC.match(text)
        order = reader.orders.get(match.group(2)) if match else None
    return _read_moment(text, form, order, reader.zone)


@functools.lru_cache(maxsize=8192)
def _read_moment(text: str, form: MomentForm, order: DateOrder | None, zone: tzinfo) -> datetime:
    """Remembered: an export repeats each date once per asset (datetimes are immutable)."""
    moment: datetime | None = None
    if form is MomentForm.EPOCH and _EPOCH.match(text):
        return from_epoch(text)
    if form is MomentForm.ISO and _ISO.match(text):
        moment = _iso(text)
    elif form is MomentForm.COMPACT and _COMPACT.match(text):
        moment = _strptime(text, "%Y%m%d")
    elif form is MomentForm.NUMERIC:
        moment = _numeric(text, order)
    elif form is MomentForm.MONTH_NAME:
        moment = _month_name(text)
    if moment is None:
        raise InvalidValue(f"not a date in this column's form ({form.value}): {text!r}")
    return moment.replace(tzinfo=zone).astimezone(UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def from_epoch(text: str) -> datetime:
    """Unix time in seconds, milliseconds or microseconds, told apart by magnitude; a fraction
    of a second (`1503014400.0`) allowed."""
    whole, _, fraction = text.partition(".")
    number = int(whole)
    if number < _SECONDS_BELOW:
        micros = number * 1_000_000 + int((fraction + "000000")[:6])
    elif number < _MILLIS_BELOW:
        micros = number * 1000
    elif number < _MICROS_BELOW:
        micros = number
    else:
        micros = number // 1000  # nanoseconds
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    except OverflowError as ex:
        raise InvalidValue(f"not a recognised date: {text!r}") from ex


def _iso(text: str) -> datetime | None:
    body = re.sub(r"\s*(UTC|GMT)$", "+00:00", text, flags=re.I)
    body = body[:-1] + "+00:00" if body.endswith(("Z", "z")) else body
    body = body.replace("/", "-")
    try:
        return datetime.fromisoformat(body)
    except ValueError:
        return None


def _numeric(text: str, order: DateOrder | None) -> datetime | None:
    match = _NUMERIC.match(text)
    if match is None:
        return None
    first, second = int(match.group(1)), int(match.group(3))
    if order is None:
        if first > 12 and second <= 12:
            order = DateOrder.DMY
        elif second > 12 and first <= 12:
            order = DateOrder.MDY
        elif first == second:
            order = DateOrder.DMY  # the same either way
        else:
            raise InvalidValue(
                f"ambiguous date {text!r}: day and month could be either way round, and its column "
                "does not say; set date_order (dmy or mdy) for this file in csv_options.toml"
            )
    day, month = (first, second) if order is DateOrder.DMY else (second, first)
    year = int(match.group(4))
    year = year + 2000 if year < 70 else year + 1900 if year < 100 else year
    hour, minute, second_ = (int(match.group(n) or 0) for n in (5, 6, 7))
    try:
        return datetime(year, month, day, hour, minute, second_)
    except ValueError as ex:
        raise InvalidValue(f"not a valid {order.value} date: {text!r}") from ex


def _month_name(text: str) -> datetime | None:
    for fmt in _MONTH_FORMATS:
        moment = _strptime(text, fmt)
        if moment is not None:
            return moment
    return None


def _strptime(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return None
