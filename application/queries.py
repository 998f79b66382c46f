"""The read model's query: filters, sort and page of `/data`, validated before any I/O."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

import attrs

from domain.records import RecordKind, SourceType, StoredRecord

T = TypeVar("T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


class SortField(enum.StrEnum):
    """The columns `/data` may be sorted by; anything else is refused."""

    PUBLISHED_AT = "published_at"
    OBSERVED_AT = "observed_at"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    PRICE_USD = "price_usd"
    MARKET_CAP_USD = "market_cap_usd"
    VOLUME_24H_USD = "volume_24h_usd"
    RANK = "rank"
    SYMBOL = "symbol"
    TITLE = "title"
    ID = "id"


class SortOrder(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"


@attrs.frozen
class SortKey:
    """Where a keyset page ends: the last item's sort value (None when it had none) and id."""

    value: datetime | Decimal | int | str | None
    id: int


def several(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A filter of one value or several: `"BTC"`, `("BTC", "ETH")`, or none (`()`)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def split_values(texts: Sequence[str]) -> tuple[str, ...]:
    """A filter's values given repeated or comma-separated (`BTC,ETH`), in order, each once;
    an empty one (an empty text, or `BTC,,ETH`) is a ValueError."""
    values: list[str] = []
    for text in texts:
        parts = text.split(",")
        if not text or "" in parts:
            raise ValueError("must not be empty (values are separated by single commas)")
        values.extend(parts)
    return tuple(dict.fromkeys(values))


MAX_FILTER_VALUES = 50  # per multi-value filter: `symbol=BTC,ETH,…`


@attrs.frozen
class DataQuery:
    """`source`, `symbol` and `quote_currency` match any of their values (none: no filter)."""

    source_type: SourceType | None = None
    source: tuple[str, ...] = attrs.field(default=(), converter=several)
    kind: RecordKind | None = None
    symbol: tuple[str, ...] = attrs.field(default=(), converter=several)
    asset_id: int | None = None
    quote_currency: tuple[str, ...] = attrs.field(default=(), converter=several)
    category: str | None = None
    author: str | None = None
    search: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    sort_by: SortField = SortField.PUBLISHED_AT
    sort_order: SortOrder = SortOrder.DESC
    page: int = attrs.field(default=1)
    page_size: int = attrs.field(default=DEFAULT_PAGE_SIZE)
    after: SortKey | None = None  # keyset paging: items after this key, instead of an offset

    @page.validator
    def _check_page(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError("page must be 1 or more")

    @page_size.validator
    def _check_page_size(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if not 1 <= value <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")

    @property
    def offset(self) -> int:
        return 0 if self.after is not None else (self.page - 1) * self.page_size


@attrs.frozen
class QuarantineQuery:
    """`/quarantine` and `kaspero quarantine list`: newest first, filtered, paged by page or by
    keyset (`after_id`: entries older than that one)."""

    source: str | None = None
    run_id: int | None = None  # entries this run quarantined (first or again)
    reason: str | None = None  # a case-insensitive substring of the reason
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    after_id: int | None = None

    @property
    def offset(self) -> int:
        return 0 if self.after_id is not None else (self.page - 1) * self.page_size


@attrs.frozen
class Page(Generic[T]):
    """A page of items. `total_is_estimate`: the total is the planner's estimate, not a count.
    `next_after`: the key to ask for the following page with, None on the last page."""

    items: Sequence[T]
    page: int
    page_size: int
    total_items: int
    total_is_estimate: bool = False
    next_after: SortKey | None = None

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_items / self.page_size) if self.total_items else 0


def sort_value(item: StoredRecord, field: SortField) -> datetime | Decimal | int | str | None:
    """The value an item is sorted by."""
    if field is SortField.ID:
        return item.id
    if field in (SortField.CREATED_AT, SortField.UPDATED_AT):
        moment: datetime = getattr(item, field.value)
        return moment
    value: datetime | Decimal | int | str | None = getattr(item.record, field.value)
    return value


def next_key(items: Sequence[StoredRecord], query: DataQuery) -> SortKey | None:
    """The key after a full page's last item; None when the page is not full (the last one)."""
    if len(items) < query.page_size or not items:
        return None
    last = items[-1]
    return SortKey(value=sort_value(last, query.sort_by), id=last.id)
