"""The read model's query: filters, sort and page of `/data`, validated before any I/O."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Generic, TypeVar

import attrs

from domain.records import RecordKind, SourceType

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
class DataQuery:
    source_type: SourceType | None = None
    source: str | None = None
    kind: RecordKind | None = None
    symbol: str | None = None
    category: str | None = None
    author: str | None = None
    search: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    sort_by: SortField = SortField.PUBLISHED_AT
    sort_order: SortOrder = SortOrder.DESC
    page: int = attrs.field(default=1)
    page_size: int = attrs.field(default=DEFAULT_PAGE_SIZE)

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
        return (self.page - 1) * self.page_size


@attrs.frozen
class Page(Generic[T]):
    items: Sequence[T]
    page: int
    page_size: int
    total_items: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_items / self.page_size) if self.total_items else 0
