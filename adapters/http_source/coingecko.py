"""CoinGecko `/coins/markets`: pages of up to 250 coins, one committed batch per page.

No total count is given: reading stops at an empty or short page, or at the page cap. Ranks
move between page fetches, so an id seen on an earlier page of the same run is skipped. The
checkpoint records the page reached; a run that died mid-snapshot resumes at the next page if
the snapshot is younger than the resume window, else starts again at page 1, as does every run
after a complete one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pydantic

from adapters.boundary import Moment, Money, RequiredMoney, RequiredText, WholeNumber, validated
from adapters.http_source.history import (
    SampleNormalizer,
    bar_raw,
    days,
    fetched,
    page_of,
    unexpected,
    within,
)
from adapters.http_source.paging import (
    ELEMENT_BYTES,
    PROVIDER_FAULTS,
    element_batches,
    over_count,
    source_unavailable,
)
from adapters.http_source.transport import ProviderClient
from application.ports import Batch, HistoryPage, Normalizer
from domain.assets import Interval
from domain.backfill import Window
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


# `/coins/{id}/market_chart/range` picks the granularity from the range's length: more than 90
# days gives daily points (00:00 UTC), 2 to 90 days hourly ones. A window is asked for at least
# that long (earlier points are dropped), so a short last window still gets its interval.
HISTORY_SPAN = {Interval.DAY: timedelta(days=365), Interval.HOUR: timedelta(days=90)}
HISTORY_ASKED = {Interval.DAY: timedelta(days=92), Interval.HOUR: timedelta(days=3)}
HISTORY_BYTES = 8 << 20


class CoinGeckoHistory:
    """A coin's prices, market caps and volumes over a window, one sample per point."""

    kind = NAME
    intervals: tuple[Interval, ...] = (Interval.HOUR, Interval.DAY)

    def __init__(
        self, client: ProviderClient, clock: Callable[[], datetime], history_days: int | None = 365
    ) -> None:
        self._client = client
        self._clock = clock
        self._days = history_days  # COINGECKO_HISTORY_DAYS: how far back the plan reaches
        self.normalizer: Normalizer = SampleNormalizer(NAME, _sample)

    def window(self, interval: Interval) -> timedelta:
        return HISTORY_SPAN[interval]

    def reach(self) -> tuple[timedelta | None, str]:
        return days(self._days), "COINGECKO_HISTORY_DAYS"

    def provider_id(self, symbol: str, names: Mapping[str, str]) -> str | None:
        return names.get(NAME)

    def fetch(self, window: Window, run_id: int) -> HistoryPage:
        asked_from = min(window.start, window.end - HISTORY_ASKED[window.interval])
        params: dict[str, str | int] = {
            "vs_currency": "usd",
            "from": int(asked_from.timestamp()),
            "to": int(window.end.timestamp()),
        }
        answer = fetched(
            NAME, self._client, window, f"/coins/{window.provider_id}/market_chart/range", params,
            "COINGECKO_HISTORY_DAYS", HISTORY_BYTES,
        )  # fmt: skip
        if not isinstance(answer, dict) or not isinstance(answer.get("prices"), list):
            raise unexpected(NAME, window, answer, self._client, "an object with a list of prices")
        caps = _by_time(answer.get("market_caps"))
        volumes = _by_time(answer.get("total_volumes"))
        now = self._clock()
        raws = []
        for point in answer["prices"]:
            if not (isinstance(point, list) and len(point) == 2 and isinstance(point[0], int)):
                continue  # not a [ms, value] pair: nothing to key it by (the raw answer is not kept)
            moment = datetime.fromtimestamp(point[0] / 1000, UTC)
            if not within(window, moment):
                continue
            payload = {
                "request": {"id": window.provider_id, "vs_currency": "usd", "symbol": window.symbol},
                "price": point,
                "market_cap": caps.get(point[0]),
                "total_volume": volumes.get(point[0]),
            }
            raws.append(bar_raw(window, moment, payload, now, run_id))
        return page_of(raws, self._client)


def _by_time(pairs: Any) -> dict[int, list[Any]]:
    if not isinstance(pairs, list):
        return {}
    return {
        pair[0]: pair
        for pair in pairs
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int)
    }


def _sample(payload: dict[str, Any]) -> dict[str, Any]:
    def value(pair: Any) -> Any:
        return pair[1] if isinstance(pair, list) and len(pair) == 2 else None

    price = payload.get("price")
    return {
        "symbol": (payload.get("request") or {}).get("symbol"),
        "moment": datetime.fromtimestamp(price[0] / 1000, UTC) if isinstance(price, list) and price else None,
        "price": value(price),
        "market_cap": value(payload.get("market_cap")),
        "volume": value(payload.get("total_volume")),
    }
