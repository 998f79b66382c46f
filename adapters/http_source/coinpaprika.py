"""CoinPaprika `/tickers`: one JSON array of every active coin, committed in batches.

The array is one snapshot with no paging, so a run that died is not resumed mid-array: the
next run fetches a fresh snapshot, and records that did not change cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs
import pydantic

from adapters.boundary import (
    Moment,
    Money,
    RequiredMoment,
    RequiredMoney,
    RequiredText,
    WholeNumber,
    validated,
)
from adapters.http_source.history import (
    SampleNormalizer,
    bar_raw,
    days,
    fetched,
    page_of,
    require_list,
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
from domain.errors import InvalidRecord
from domain.plausibility import bar_out_of_range
from domain.records import RawRecord, Source, SourceType, UnifiedRecord, market_record

NAME = "coinpaprika"

_N, _S = frozenset({FieldType.NUMBER}), frozenset({FieldType.STRING})
# `/tickers` elements as documented (../shared/SOURCES.md); `quotes` is checked as one object
CONTRACT = Contract(
    fields=(
        FieldSpec("id", _S, required=True),
        FieldSpec("name", _S, required=True),
        FieldSpec("symbol", _S, required=True),
        FieldSpec("rank", _N),
        FieldSpec("circulating_supply", _N),
        FieldSpec("total_supply", _N),
        FieldSpec("max_supply", _N),
        FieldSpec("beta_value", _N),
        FieldSpec("first_data_at", _S),
        FieldSpec("last_updated", _S),
        FieldSpec("quotes", frozenset({FieldType.OBJECT}), required=True),
    )
)


class HttpxCoinPaprikaReader:
    source = Source(name=NAME, source_type=SourceType.API)

    def __init__(
        self,
        client: ProviderClient,
        clock: Callable[[], datetime],
        batch_size: int = 1000,
        max_tickers: int = 25_000,
    ) -> None:
        self._client = client
        self._clock = clock
        self._batch_size = batch_size
        self._max_tickers = max_tickers  # COINPAPRIKA_MAX_TICKERS

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        snapshot_at = self._clock()
        try:
            elements = self._client.get_json("/tickers", max_bytes=self._max_tickers * ELEMENT_BYTES)
        except PROVIDER_FAULTS as ex:
            raise source_unavailable(NAME, ex, self._client) from ex
        if not isinstance(elements, list):
            raise source_unavailable(NAME, TypeError("expected a JSON array of tickers"), self._client)
        refused = over_count(NAME, elements, self._max_tickers, self._client)
        if refused is not None:
            raise refused
        seen: set[str] = set()
        for start in range(0, max(len(elements), 1), self._batch_size):
            chunk = elements[start : start + self._batch_size]
            raws, rejected = element_batches(NAME, chunk, seen, snapshot_at, run_id)
            last = start + self._batch_size >= len(elements)
            cursor_out = {
                "snapshot_at": snapshot_at.isoformat(),
                "offset": start + len(chunk),
                "complete": last,
            }
            yield Batch(
                tuple(raws),
                cursor_out,
                tuple(rejected),
                self._client.tally.take(),
                self._client.tally.take_responses(),
            )


class UsdQuote(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    price: RequiredMoney
    volume_24h: Money = None
    market_cap: Money = None
    percent_change_24h: Money = None


class Quotes(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    USD: UsdQuote


class CoinPaprikaTicker(pydantic.BaseModel):
    """The typed view of one `/tickers` element; required: id, symbol, name, quotes.USD.price."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    id: RequiredText
    name: RequiredText
    symbol: RequiredText
    rank: WholeNumber = None
    last_updated: Moment = None
    quotes: Quotes


MAPPED = frozenset({"id", "name", "symbol", "rank", "last_updated"})
SUPPLIES = ("circulating_supply", "total_supply", "max_supply")


class CoinPaprikaNormalizer:
    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        ticker = validated(CoinPaprikaTicker, raw.payload)
        usd = ticker.quotes.USD
        extra = {key: value for key, value in raw.payload.items() if key not in MAPPED}
        # an uncapped coin may say 0 rather than null: 0 supply means "no figure"
        extra.update({key: None for key in SUPPLIES if raw.payload.get(key) == 0})
        return market_record(
            raw,
            SourceType.API,
            price_field="quotes.USD.price",
            symbol=ticker.symbol,
            asset_name=ticker.name,
            price_usd=usd.price,
            observed_at=ticker.last_updated or raw.fetched_at,
            market_cap_usd=usd.market_cap,
            volume_24h_usd=usd.volume_24h,
            rank=ticker.rank or None,
            pct_change_24h=usd.percent_change_24h,
            url=f"https://coinpaprika.com/coin/{ticker.id}/",
            extra=extra,
        )


# `/tickers/{id}/historical` answers at most `limit` points (5,000 at most); a window holds 1,000
# buckets of its interval, well within, whatever the plan's own cap. Daily history is read as
# bars from `/coins/{id}/ohlcv/historical` (a day's open, high, low and close, at most 366 a
# request): a sample at midnight would make a flat candle of a day that moved
HISTORY_BUCKETS = 1000
OHLCV_DAYS = 366
HISTORY_INTERVALS = {Interval.FIVE_MINUTES: "5m", Interval.HOUR: "1h", Interval.DAY: "1d"}
HISTORY_BYTES = 8 << 20


class CoinPaprikaHistory:
    """A coin's daily bars (`ohlcv/historical`) or a ticker's samples at 5 minutes and hours
    (`tickers/{id}/historical`: price, volume and market cap), over a window."""

    kind = NAME
    intervals: tuple[Interval, ...] = (Interval.FIVE_MINUTES, Interval.HOUR, Interval.DAY)

    def __init__(
        self, client: ProviderClient, clock: Callable[[], datetime], history_days: int | None = 365
    ) -> None:
        self._client = client
        self._clock = clock
        self._days = history_days  # COINPAPRIKA_HISTORY_DAYS
        self.normalizer: Normalizer = PaprikaHistoryNormalizer(SampleNormalizer(NAME, _sample))

    def window(self, interval: Interval) -> timedelta:
        return timedelta(days=OHLCV_DAYS) if interval is Interval.DAY else interval.step * HISTORY_BUCKETS

    def reach(self) -> tuple[timedelta | None, str]:
        return days(self._days), "COINPAPRIKA_HISTORY_DAYS"

    def provider_id(self, symbol: str, names: Mapping[str, str]) -> str | None:
        return names.get(NAME)

    def fetch(self, window: Window, run_id: int) -> HistoryPage:
        times = {
            "start": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if window.interval is Interval.DAY:
            return self._read(
                window, run_id, f"/coins/{window.provider_id}/ohlcv/historical",
                {**times, "limit": OHLCV_DAYS, "quote": "usd"}, "bar", "time_open", "daily bars",
            )  # fmt: skip
        return self._read(
            window, run_id, f"/tickers/{window.provider_id}/historical",
            {**times, "interval": HISTORY_INTERVALS[window.interval], "limit": 5000}, "point", "timestamp", "points",
        )  # fmt: skip

    def _read(
        self,
        window: Window,
        run_id: int,
        path: str,
        params: dict[str, str | int],
        key: str,
        time_field: str,
        what: str,
    ) -> HistoryPage:
        """One answer's elements as raw records (`{"request": …, key: element}`), keyed by each
        element's `time_field`; an element without a readable time cannot be keyed, and is left."""
        answer = fetched(NAME, self._client, window, path, params, "COINPAPRIKA_HISTORY_DAYS", HISTORY_BYTES)
        require_list(NAME, window, answer, self._client, f"a JSON array of {what}")
        now = self._clock()
        raws = []
        for element in answer:
            moment = _moment(element.get(time_field)) if isinstance(element, dict) else None
            if moment is None or not within(window, moment):
                continue
            payload = {
                "request": {"id": window.provider_id, "quote": "usd", "symbol": window.symbol},
                key: element,
            }
            raws.append(bar_raw(window, moment, payload, now, run_id))
        return page_of(raws, self._client)


class DailyBar(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    time_open: RequiredMoment
    open: RequiredMoney
    high: RequiredMoney
    low: RequiredMoney
    close: RequiredMoney
    volume: Money = None
    market_cap: Money = None


@attrs.frozen
class PaprikaHistoryNormalizer:
    """A daily bar of `ohlcv/historical` (its open, high, low and close), else a sample."""

    samples: Normalizer

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        if "bar" not in raw.payload:
            return self.samples.normalize(raw)
        bar = validated(DailyBar, raw.payload["bar"])
        outside = bar_out_of_range(bar.open, bar.high, bar.low, bar.close)
        if outside:
            raise InvalidRecord(f"bar: {outside}")
        return market_record(
            raw,
            SourceType.API,
            symbol=str((raw.payload.get("request") or {}).get("symbol") or ""),
            asset_name=None,
            price_usd=bar.close,
            observed_at=bar.time_open,
            market_cap_usd=bar.market_cap,
            volume_24h_usd=bar.volume,
            ohlc_usd=(bar.open, bar.high, bar.low),
            bar_seconds=86400,
        )


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _sample(payload: dict[str, Any]) -> dict[str, Any]:
    found = payload.get("point")
    point: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "symbol": (payload.get("request") or {}).get("symbol"),
        "moment": point.get("timestamp"),
        "price": point.get("price"),
        "market_cap": point.get("market_cap"),
        "volume": point.get("volume_24h"),
    }
