"""Each query parameter of `/data`, `/quarantine` and the histories declared once: its name, type, limits and
meaning. The parser (`params.py`) reads requests by these declarations and the OpenAPI document
(`openapi.py`) describes them from the same ones, so the two cannot disagree."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from application.queries import MAX_PAGE_SIZE, SortField
from domain.assets import Interval
from domain.records import RecordKind, SourceType

MAX_TEXT = 200
# a text parameter as the API reads it: taken as sent (never trimmed), no NUL (PostgreSQL's text
# cannot hold one), 1 to MAX_TEXT characters
TEXT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT,
    "pattern": "^[^\u0000]*$",
}
# past it (10,000 rows at the largest page), an offset scan costs what a request's budget has:
# `cursor` pages at any depth. The same limit on every list (`/data`, `/quarantine`, `/assets`).
MAX_PAGE = 100
MAX_ID = 2**63 - 1


def id_segment(name: str) -> str:
    """A path segment holding an id (1 to MAX_ID, as PostgreSQL's bigint): `{name:int(...)}`."""
    return "{" + f"{name}:int(min=1, max={MAX_ID})" + "}"


MAX_REPEATS = 50
# one or several values: repeated (`symbol=BTC&symbol=ETH`) or comma-separated (`symbol=BTC,ETH`),
# each value non-empty
SEVERAL_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": MAX_REPEATS,
    "items": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TEXT,
        "pattern": "^[^,\u0000]+(,[^,\u0000]+)*$",
    },
}


# ids up to 18 digits, comma-separated (the parser takes any up to 2**63 - 1)
IDS_PATTERN = "^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17})*$"


class Kind(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    CHOICE = "choice"
    TIMESTAMP = "timestamp"
    SEVERAL = "several"  # one or more texts
    IDS = "ids"  # one or more ids (whole numbers from 1)


class FileFormat(enum.StrEnum):
    """What `/data` answers in: a JSON page, or every match as one file."""

    JSON = "json"
    CSV = "csv"
    NDJSON = "ndjson"
    PARQUET = "parquet"


@attrs.frozen
class Param:
    name: str
    kind: Kind
    description: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        if self.kind is Kind.TEXT:
            return dict(TEXT_SCHEMA)
        if self.kind is Kind.SEVERAL:
            return dict(SEVERAL_SCHEMA)
        if self.kind is Kind.IDS:
            return {**SEVERAL_SCHEMA, "items": {"type": "string", "pattern": IDS_PATTERN}}
        if self.kind is Kind.TIMESTAMP:
            return {"type": "string", "format": "date-time"}
        if self.kind is Kind.CHOICE:
            return {"enum": list(self.choices)}
        schema: dict[str, Any] = {"type": "integer"}
        if self.low is not None:
            schema["minimum"] = self.low
        if self.high is not None:
            schema["maximum"] = self.high
        return schema


def _choice(name: str, kind: type[enum.StrEnum], description: str) -> Param:
    return Param(name, Kind.CHOICE, description, choices=tuple(member.value for member in kind))


PAGE = Param(
    "page",
    Kind.INTEGER,
    f"page number, from 1 to {MAX_PAGE} (10,000 rows at most); deeper with `cursor`",
    1,
    MAX_PAGE,
)
PAGE_SIZE = Param("page_size", Kind.INTEGER, "items per page", 1, MAX_PAGE_SIZE)
CURSOR = Param(
    "cursor",
    Kind.TEXT,
    "pagination.next_cursor of the previous page: keyset paging, fast at any depth. Not with `page` "
    "(400), and only a cursor this API gave out for the same sort (400 otherwise)",
)

FORMAT = _choice(
    "format",
    FileFormat,
    "json (a page, the default), csv, ndjson or parquet: every match as one streamed file, no page "
    "or page_size; also asked for by `Accept: text/csv`, `application/x-ndjson` or "
    "`application/vnd.apache.parquet`",
)

DATA = (
    _choice("source_type", SourceType, "api, csv or rss"),
    Param(
        "source", Kind.SEVERAL, "source names, e.g. csv:market_history; several: repeated or comma-separated"
    ),
    _choice("kind", RecordKind, "market or article"),
    Param(
        "symbol",
        Kind.SEVERAL,
        "asset symbols, any case: their quotes, and news that mentions them; several: `symbol=BTC,ETH` or repeated",
    ),
    Param("asset", Kind.INTEGER, "a canonical asset id (see /assets)", 1, MAX_ID),
    Param(
        "quote_currency",
        Kind.SEVERAL,
        "market records quoted in these currencies (USD, USDT, BTC…), any case; several: comma-separated or repeated",
    ),
    Param("category", Kind.TEXT, "an article category"),
    Param("author", Kind.TEXT, "an article author"),
    Param("search", Kind.TEXT, "a case-insensitive substring of title or description"),
    Param("start_date", Kind.TIMESTAMP, "published_at on or after (not after end_date: 400)"),
    Param("end_date", Kind.TIMESTAMP, "published_at on or before"),
    _choice("sort_by", SortField, "the sort column"),
    Param("sort_order", Kind.CHOICE, "the sort direction", choices=("asc", "desc")),
    PAGE,
    PAGE_SIZE,
    CURSOR,
    FORMAT,
)


QUARANTINE = (
    Param("source", Kind.TEXT, "only this source, e.g. csv:prices"),
    Param("run_id", Kind.INTEGER, "quarantined (again) by this run", 1, MAX_ID),
    Param("reason", Kind.TEXT, "a case-insensitive substring of the reason"),
    PAGE,
    PAGE_SIZE,
    Param("cursor", Kind.TEXT, "pagination.next_cursor of the previous page; not with `page` (400)"),
    FORMAT,
)


MAX_HISTORY_LIMIT = 10_000
HISTORY_RANGE = (
    Param(
        "start",
        Kind.TIMESTAMP,
        "observed on or after (not after `end`: 400); a page's `next_start` goes here",
    ),
    Param("end", Kind.TIMESTAMP, "observed on or before (not before `start`: 400)"),
    _choice("interval", Interval, "bucket width (default 1d)"),
    Param("source", Kind.TEXT, "one source, or `consensus` for every source together"),
    Param(
        "limit",
        Kind.INTEGER,
        "candles per page (default 1000); a page holds whole buckets and gives the next one's "
        "`next_start`. Not with a file `format`, which streams the whole range",
        1,
        MAX_HISTORY_LIMIT,
    ),
    _choice(
        "format",
        FileFormat,
        "json (a page, the default), csv, ndjson or parquet: every candle of the range as one "
        "streamed file; also asked for by `Accept`",
    ),
)
HISTORY = (
    Param(
        "asset_id",
        Kind.IDS,
        "canonical asset ids (see /assets); several: `asset_id=1,2` or repeated",
    ),
    Param(
        "symbol",
        Kind.SEVERAL,
        "asset symbols, any case (every asset of each); several: `symbol=BTC,ETH` or repeated",
    ),
    *HISTORY_RANGE,
)


def by_name(params: tuple[Param, ...]) -> dict[str, Param]:
    return {param.name: param for param in params}
