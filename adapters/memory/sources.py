"""In-memory sources: a reader over pages given up front and a normalizer for their simple shape."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from application.errors import SourceUnavailable
from application.ports import Batch
from domain.cleaning import parse_decimal, parse_timestamp
from domain.errors import InvalidRecord, InvalidValue
from domain.records import RawRecord, RecordKind, Source, SourceType, UnifiedRecord

FETCHED_AT = datetime(2024, 1, 1, tzinfo=UTC)


class InMemorySourceReader:
    """Serves `pages` as batches; the cursor is the index of the next page, so reading resumes.

    Payloads are dicts with an `id`. `unavailable` makes every read fail as an unreachable source.
    """

    def __init__(
        self, name: str, pages: Sequence[Sequence[dict[str, Any]]], unavailable: bool = False
    ) -> None:
        self.source = Source(name=name, source_type=SourceType.API)
        self.pages = [list(page) for page in pages]
        self.unavailable = unavailable
        self.reads: list[int] = []

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        if self.unavailable:
            raise SourceUnavailable(f"{self.source.name}: unreachable")
        start = int(cursor["next_page"]) if cursor and cursor.get("next_page", 0) < len(self.pages) else 0
        for index in range(start, len(self.pages)):
            self.reads.append(index)
            raws = tuple(
                RawRecord.of(
                    source=self.source.name,
                    source_record_id=str(payload["id"]),
                    payload=payload,
                    fetched_at=FETCHED_AT,
                    run_id=run_id,
                )
                for payload in self.pages[index]
            )
            yield Batch(raws=raws, cursor={"next_page": index + 1})


class InMemoryMarketNormalizer:
    """`{"id", "symbol", "price", "at"}` → a market record; a missing or bad price is refused."""

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        payload = raw.payload
        try:
            price = parse_decimal(payload.get("price"))
            observed = parse_timestamp(payload.get("at"))
        except InvalidValue as ex:
            raise InvalidRecord(str(ex)) from ex
        if price is None:
            raise InvalidRecord("price: required value is missing")
        symbol = str(payload.get("symbol", "")).upper() or None
        return UnifiedRecord(
            source=raw.source,
            source_type=SourceType.API,
            source_record_id=raw.source_record_id,
            kind=RecordKind.MARKET,
            checksum=raw.checksum,
            title=symbol,
            symbol=symbol,
            price_usd=price,
            observed_at=observed,
            published_at=observed,
        )
