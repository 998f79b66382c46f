"""CoinGecko `/coins/markets`: pages of up to 250 coins, one committed batch per page.

No total count is given: reading stops at an empty or short page, or at the page cap. Ranks
move between page fetches, so an id seen on an earlier page of the same run is skipped. The
checkpoint records the page reached; a run that died mid-snapshot resumes at the next page if
the snapshot is younger than the resume window, else starts again at page 1, as does every run
after a complete one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import attrs
import pydantic

from adapters.boundary import Moment, Money, RequiredMoney, RequiredText, WholeNumber, validated
from adapters.http_source.paging import (
    ELEMENT_BYTES,
    PROVIDER_FAULTS,
    element_batches,
    over_count,
    source_unavailable,
)
from adapters.http_source.transport import ProviderClient
from application.ports import Batch
from domain.drift import Contract, FieldSpec, FieldType
from domain.records import RawRecord, Source, SourceType, UnifiedRecord, market_record

NAME = "coingecko"

_N, _S, _O = frozenset({FieldType.NUMBER}), frozenset({FieldType.STRING}), frozenset({FieldType.OBJECT})
# `/coins/markets` as documented (../shared/SOURCES.md); nullable fields may be null, not absent
CONTRACT = Contract(
    fields=(
        FieldSpec("id", _S, required=True),
        FieldSpec("symbol", _S, required=True),
        FieldSpec("name", _S, required=True),
        FieldSpec("image", _S),
        FieldSpec("current_price", _N, required=True),
        *(
            FieldSpec(name, _N)
            for name in (
                "market_cap",
                "market_cap_rank",
                "fully_diluted_valuation",
                "total_volume",
                "high_24h",
                "low_24h",
                "price_change_24h",
                "price_change_percentage_24h",
                "market_cap_change_24h",
                "market_cap_change_percentage_24h",
                "circulating_supply",
                "total_supply",
                "max_supply",
                "ath",
                "ath_change_percentage",
                "atl",
                "atl_change_percentage",
            )
        ),
        FieldSpec("ath_date", _S),
        FieldSpec("atl_date", _S),
        FieldSpec("roi", _O),
        FieldSpec("last_updated", _S),
    )
)


@attrs.frozen
class CoinGeckoPaging:
    per_page: int = 250
    max_pages: int = 4
    resume_window: timedelta = timedelta(minutes=10)


class HttpxCoinGeckoReader:
    source = Source(name=NAME, source_type=SourceType.API)

    def __init__(
        self, client: ProviderClient, clock: Callable[[], datetime], paging: CoinGeckoPaging
    ) -> None:
        self._client = client
        self._clock = clock
        self._paging = paging

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        page, snapshot_started = self._start(cursor)
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {
                "vs_currency": "usd",
                "order": "market_cap_desc",
                "per_page": self._paging.per_page,
                "page": page,
            }
            try:
                elements = self._client.get_json(
                    "/coins/markets", params, max_bytes=(self._paging.per_page + 4) * ELEMENT_BYTES
                )
            except PROVIDER_FAULTS as ex:
                raise source_unavailable(NAME, ex, self._client) from ex
            if not isinstance(elements, list):
                raise source_unavailable(NAME, TypeError("expected a JSON array of coins"), self._client)
            refused = over_count(NAME, elements, self._paging.per_page, self._client)
            if refused is not None:
                raise refused
            last = len(elements) < self._paging.per_page or page >= self._paging.max_pages
            raws, rejected = element_batches(NAME, elements, seen, self._clock(), run_id)
            cursor_out = {"page": page, "snapshot_started_at": snapshot_started.isoformat(), "complete": last}
            yield Batch(
                tuple(raws),
                cursor_out,
                tuple(rejected),
                self._client.tally.take(),
                self._client.tally.take_responses(),
            )
            if last:
                return
            page += 1

    def _start(self, cursor: dict[str, Any] | None) -> tuple[int, datetime]:
        now = self._clock()
        if cursor and not cursor.get("complete", True):
            started = datetime.fromisoformat(str(cursor["snapshot_started_at"]))
            if now - started <= self._paging.resume_window and int(cursor["page"]) < self._paging.max_pages:
                return int(cursor["page"]) + 1, started
        return 1, now


class CoinGeckoCoin(pydantic.BaseModel):
    """The typed view of one `/coins/markets` element; required: id, symbol, name, price."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    id: RequiredText
    symbol: RequiredText
    name: RequiredText
    current_price: RequiredMoney
    market_cap: Money = None
    market_cap_rank: WholeNumber = None
    total_volume: Money = None
    price_change_percentage_24h: Money = None
    last_updated: Moment = None


MAPPED = frozenset(CoinGeckoCoin.model_fields)


class CoinGeckoNormalizer:
    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        coin = validated(CoinGeckoCoin, raw.payload)
        return market_record(
            raw,
            SourceType.API,
            price_field="current_price",
            symbol=coin.symbol,
            asset_name=coin.name,
            price_usd=coin.current_price,
            observed_at=coin.last_updated or raw.fetched_at,
            market_cap_usd=coin.market_cap,  # CoinGecko says 0 when it does not know
            volume_24h_usd=coin.total_volume,
            rank=coin.market_cap_rank,
            pct_change_24h=coin.price_change_percentage_24h,
            url=f"https://www.coingecko.com/en/coins/{coin.id}",
            extra={key: value for key, value in raw.payload.items() if key not in MAPPED},
        )
