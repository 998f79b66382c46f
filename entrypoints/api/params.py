"""Query strings to typed queries: every parameter checked, every refusal a 400 that names it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

import falcon

from application.queries import DataQuery, QuarantineQuery, SortField, SortKey, SortOrder, split_values
from domain.assets import HistoryQuery, Interval
from domain.records import RecordKind, SourceType
from entrypoints.api import declared
from entrypoints.api.declared import FileFormat
from entrypoints.api.errors import InvalidParameter

E = TypeVar("E", bound=StrEnum)

DATA_PARAMETERS = tuple(param.name for param in declared.DATA)
_DATA = declared.by_name(declared.DATA)
_QUARANTINE = declared.by_name(declared.QUARANTINE)
_TIME_FIELDS = {SortField.PUBLISHED_AT, SortField.OBSERVED_AT, SortField.CREATED_AT, SortField.UPDATED_AT}
_NUMBER_FIELDS = {SortField.PRICE_USD, SortField.MARKET_CAP_USD, SortField.VOLUME_24H_USD}
_INTEGER_FIELDS = {SortField.RANK, SortField.ID}
_MAX_TEXT = declared.MAX_TEXT
_INTEGER = re.compile(r"^-?[0-9]{1,30}$")
MAX_PAGE = declared.MAX_PAGE


class QueryParams:
    """One request's query string, read strictly: unknown and repeated parameters are refused."""

    def __init__(self, req: falcon.Request, allowed: Iterable[str], form: bool = False) -> None:
        """`form`: a page's form sent these, where a field left empty (or blank) means "not
        given" and text is trimmed; the API takes text as sent, as its document says."""
        self._params = req.params
        self._form = form
        if form:
            self._params = {
                name: value
                for name, value in req.params.items()
                if not isinstance(value, str) or value.strip()
            }
        allowed = set(allowed)
        unknown = sorted(name for name in self._params if name not in allowed)
        if unknown:
            raise InvalidParameter(
                unknown[0], f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
            )

    def several(self, name: str) -> tuple[str, ...]:
        """A filter of one value or several: repeated, or comma-separated, each value non-empty."""
        given = self._params.get(name)
        if given is None:
            return ()
        texts = given if isinstance(given, list) else [given]
        if len(texts) > declared.MAX_REPEATS:
            raise InvalidParameter(name, f"{name} may be given at most {declared.MAX_REPEATS} times")
        if self._form:
            texts = [text.strip() for text in texts]
        for text in texts:
            if len(text) > _MAX_TEXT or "\x00" in text:
                raise InvalidParameter(name, f"{name} must be at most {_MAX_TEXT} printable characters")
        try:
            return split_values(texts)
        except ValueError as ex:
            raise InvalidParameter(name, f"{name} {ex}") from None

    def text(self, name: str) -> str | None:
        value = self._params.get(name)
        if value is None:
            return None
        if isinstance(value, list):
            raise InvalidParameter(name, f"{name} was given more than once")
        if self._form:
            value = value.strip()
        if not value:
            raise InvalidParameter(name, f"{name} must not be empty")
        if len(value) > _MAX_TEXT or "\x00" in value:
            raise InvalidParameter(name, f"{name} must be at most {_MAX_TEXT} printable characters")
        return value

    def declared(self, param: declared.Param, default: int = 0) -> int:
        """An integer parameter read by its declaration's limits."""
        assert param.low is not None
        return self.integer(param.name, default, param.low, param.high)

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        text = self.text(name)
        if text is None:
            return default
        if not _INTEGER.match(text):  # int() would also take " 5", "1_000" and "٥"
            raise InvalidParameter(name, f"{name} must be a whole number, got {text[:40]!r}")
        value = int(text)
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
            raise InvalidParameter(name, f"{name} must be {bounds}, got {value}")
        return value

    def choice(self, name: str, kind: type[E], default: E | None = None) -> E | None:
        text = self.text(name)
        if text is None:
            return default
        try:
            return kind(text.lower())
        except ValueError:
            choices = ", ".join(member.value for member in kind)
            raise InvalidParameter(name, f"{name} must be one of {choices}, got {text!r}") from None

    def timestamp(self, name: str) -> datetime | None:
        text = self.text(name)
        return None if text is None else moment_of(name, text, in_query=True)


# the moments a query may name: a day inside what a datetime holds, so a bucket's end, a day's
# end or a conversion to UTC never overflows; a moment past them means "no bound" and is held to them
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def within_range(moment: datetime) -> datetime:
    """`moment` in UTC, held to [EARLIEST, LATEST]."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # an offset that takes it past year 1 or 9999
        return EARLIEST if moment.year < 5000 else LATEST
    return min(max(utc, EARLIEST), LATEST)


def file_format(req: falcon.Request, parameters: Iterable[str]) -> FileFormat | None:
    """A list endpoint's `format` (among its `parameters`), when given."""
    return QueryParams(req, parameters).choice("format", FileFormat)


HISTORY_RANGE_PARAMETERS = tuple(param.name for param in declared.HISTORY_RANGE)
HISTORY_PARAMETERS = tuple(param.name for param in declared.HISTORY)
DEFAULT_HISTORY_LIMIT = 1000


def history_query(params: QueryParams, format_: str, suspect: Decimal = Decimal("0.10")) -> HistoryQuery:
    """The range, interval, series and page size of a history (`/assets/{id}/history`, `/history`)."""
    start, end = params.timestamp("start"), params.timestamp("end")
    if start and end and start > end:
        raise InvalidParameter("start", "start must not be after end")
    limit: int | None = params.integer("limit", DEFAULT_HISTORY_LIMIT, 1, declared.MAX_HISTORY_LIMIT)
    if format_ != "json":
        if params.text("limit") is not None:
            raise InvalidParameter("limit", f"an export (format={format_}) streams the whole range: no limit")
        limit = None
    return HistoryQuery(
        interval=params.choice("interval", Interval, Interval.DAY) or Interval.DAY,
        start=start,
        end=end,
        source=params.text("source"),
        limit=limit,
        suspect=suspect,
    )


def asset_ids(params: QueryParams) -> tuple[int, ...]:
    """`asset_id` values, each a whole number from 1."""
    found = []
    for text in params.several("asset_id"):
        if not _INTEGER.match(text) or not 1 <= int(text) <= declared.MAX_ID:
            raise InvalidParameter(
                "asset_id", f"asset_id values must be asset ids (whole numbers from 1), got {text[:40]!r}"
            )
        found.append(int(text))
    return tuple(found)


def data_query(req: falcon.Request) -> DataQuery:
    params = QueryParams(req, DATA_PARAMETERS)
    start, end = params.timestamp("start_date"), params.timestamp("end_date")
    if start and end and start > end:
        raise InvalidParameter("start_date", "start_date must not be after end_date")
    sort_by = params.choice("sort_by", SortField, SortField.PUBLISHED_AT) or SortField.PUBLISHED_AT
    sort_order = params.choice("sort_order", SortOrder, SortOrder.DESC) or SortOrder.DESC
    page = list_page(params)
    cursor = params.text("cursor")
    if cursor is not None and page != 1:
        raise InvalidParameter("cursor", "give page or cursor, not both")
    return DataQuery(
        source_type=params.choice("source_type", SourceType),
        source=params.several("source"),
        kind=params.choice("kind", RecordKind),
        symbol=params.several("symbol"),
        asset_id=params.declared(_DATA["asset"]) or None,
        quote_currency=tuple(value.upper() for value in params.several("quote_currency")),
        category=params.text("category"),
        author=params.text("author"),
        search=params.text("search"),
        start_date=start,
        end_date=end,
        sort_by=sort_by,
        sort_order=sort_order,
        page=page,
        page_size=params.declared(_DATA["page_size"], 20),
        after=decode_cursor(cursor, sort_by, sort_order) if cursor else None,
    )


QUARANTINE_PARAMETERS = tuple(param.name for param in declared.QUARANTINE)


def quarantine_query(req: falcon.Request) -> QuarantineQuery:
    params = QueryParams(req, QUARANTINE_PARAMETERS)
    page = list_page(params)
    cursor = params.text("cursor")
    if cursor is not None and page != 1:
        raise InvalidParameter("cursor", "give page or cursor, not both")
    return QuarantineQuery(
        source=params.text("source"),
        run_id=params.declared(_QUARANTINE["run_id"]) or None,
        reason=params.text("reason"),
        page=page,
        page_size=params.declared(_QUARANTINE["page_size"], 20),
        after_id=decode_id_cursor(cursor) if cursor else None,
    )


def list_page(params: QueryParams, cursor_alternative: bool = True) -> int:
    """`page`, at most MAX_PAGE on every list; past it the answer says what to use instead."""
    page = params.integer("page", 1, declared.PAGE.low or 1, None)
    if page > MAX_PAGE:
        instead = (
            "deep pages are what `cursor` is for (each answer's pagination.next_cursor), as fast on the "
            "millionth row as on the first"
            if cursor_alternative
            else "narrow the list with `symbol` or `search` instead"
        )
        raise InvalidParameter("page", f"page must be at most {MAX_PAGE:,}: {instead}")
    return page


def encode_id_cursor(last_id: int) -> str:
    """An opaque token for lists paged newest first by id: where the page ended."""
    return base64.urlsafe_b64encode(json.dumps({"q": last_id}).encode()).decode().rstrip("=")


def decode_id_cursor(token: str) -> int:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        value = payload["q"]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**63:
            raise ValueError("out of range")
    except (ValueError, KeyError, TypeError) as ex:
        raise InvalidParameter("cursor", "cursor is not one this API gave out") from ex
    return value


def encode_cursor(key: SortKey, sort_by: SortField, sort_order: SortOrder) -> str:
    """An opaque token: the sort it belongs to and where the page ended."""
    value = key.value.isoformat() if isinstance(key.value, datetime) else key.value
    payload = {
        "s": sort_by.value,
        "o": sort_order.value,
        "v": None if value is None else str(value),
        "i": key.id,
    }
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str, sort_by: SortField, sort_order: SortOrder) -> SortKey:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        made_for = (SortField(payload["s"]), SortOrder(payload["o"]))
        raw, record_id = payload["v"], int(payload["i"])
        if not 0 < record_id < _BIGINT:
            raise ValueError("out of range")
        value = None if raw is None else _typed(str(raw), made_for[0])
    except (ValueError, KeyError, TypeError, ArithmeticError) as ex:
        raise InvalidParameter("cursor", "cursor is not one this API gave out") from ex
    if made_for != (sort_by, sort_order):
        raise InvalidParameter(
            "cursor", f"cursor belongs to sort_by={made_for[0].value}&sort_order={made_for[1].value}"
        )
    return SortKey(value=value, id=record_id)


_BIGINT = 2**63


def _typed(raw: str, field: SortField) -> datetime | Decimal | int | str:
    """A cursor's sort value, strictly: only values this API could have given out."""
    if "\x00" in raw or len(raw) > 1024:
        raise ValueError("not a value of this API")
    if field in _TIME_FIELDS:
        moment = datetime.fromisoformat(raw)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if field in _NUMBER_FIELDS:
        number = Decimal(raw)
        if not number.is_finite() or abs(number.adjusted()) > 1000:
            raise ValueError("not a number this API stores")
        return number
    if field in _INTEGER_FIELDS:
        value = int(raw)
        if not -_BIGINT <= value < _BIGINT:
            raise ValueError("out of range")
        return value
    return raw


def moment_of(name: str, text: str, in_query: bool = False) -> datetime:
    """`text` (a query's or a body's) as a moment in UTC, held to the calendar's ends; a naive one
    is UTC. `InvalidParameter` naming `name` when it is no ISO 8601 date or date-time. In a query
    string an unencoded `+` of an offset arrives as a space (`in_query` puts it back)."""
    try:
        moment = datetime.fromisoformat(_restore_offset(text) if in_query else text)
    except ValueError:
        raise InvalidParameter(
            name,
            f"{name} must be an ISO 8601 date or date-time (2024-01-31 or 2024-01-31T12:00:00Z), got {text!r}",
        ) from None
    return within_range(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)


def _restore_offset(text: str) -> str:
    """`...T12:00:00 01:00` → `...T12:00:00+01:00`: an unencoded `+` arrives as a space; `Z` is UTC."""
    text = re.sub(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$", r"\1+\2", text)
    return text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
